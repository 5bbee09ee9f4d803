"""Alert lifecycle: pure transitions (state.py) and the book that applies and persists them."""
