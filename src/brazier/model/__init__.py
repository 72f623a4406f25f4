"""Pure types, invariants and domain errors. Imports nothing of brazier."""
