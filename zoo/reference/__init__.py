"""Independent reference implementations that verify's `encodings` check compares against.

Imported lazily by zoo.checks: each module pulls in a heavy framework (tapas_tf: TensorFlow).
"""
