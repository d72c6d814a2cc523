// Keeps the library non-empty before any op file exists.
