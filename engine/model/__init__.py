"""Neural networks of the engine (Dia model and the DAC codec), plain PyTorch, inference only."""
