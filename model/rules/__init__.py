"""Local learning rules, one per module; each has a numba update and a numpy reference."""
