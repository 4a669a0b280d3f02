"""Lightning callbacks of raiha."""
