"""Brazier's benchmarks. ``make bench`` runs ``python -m bench``; results go to bench/results/."""
