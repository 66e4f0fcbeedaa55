"""What the comparison methods train on: coarse noise (DAE), interpolation-factor labels (FPI)."""
