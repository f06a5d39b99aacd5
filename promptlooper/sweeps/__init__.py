"""Parameter spaces and sweep strategies (grid, random)."""
