"""What the comparison methods train on: coarse noise (DAE), the clean slice itself (VAE),
interpolation-factor labels (FPI)."""
