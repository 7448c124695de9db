"""The cache as a managed store: what each model holds on disk, removing it, pruning leftovers, re-hashing.

Everything here is computed from the disk at call time: a model's parts are found by looking
(downloads/, raw/, converted/, receipts/, locks/ under ZOO_HOME, and the model's snapshot in the
Hugging Face cache), its state by checking that the files its receipt and manifest list are there.
Sizes count each inode once (a converted Hub model hard-links the snapshot's blobs), so the parts
of a listing add up to the bytes on disk. Removing takes the model's pull and conversion locks
without waiting and refuses while either is held; pruning leaves alone what a running pull or
conversion may still use.

`state` (pulled / converted / verified), `listing` (`zoo cache ls`), `removal` (`rm`, `prune`),
`verification` (`verify`), over `inventory` (what is on disk for a model) and `records`.
"""

from .listing import PARTS, cache_list
from .records import CacheCheck, CacheEntry, Part, Problem, Removal
from .removal import RM_PARTS, cache_prune, cache_remove
from .state import converted_complete, entry_state, model_path
from .verification import cache_verify

__all__ = [
    "PARTS",
    "RM_PARTS",
    "CacheCheck",
    "CacheEntry",
    "Part",
    "Problem",
    "Removal",
    "cache_list",
    "cache_prune",
    "cache_remove",
    "cache_verify",
    "converted_complete",
    "entry_state",
    "model_path",
]
