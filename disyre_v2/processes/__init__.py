"""Worker processes shared by the stages: a pool for background CPU work and the guard that ends a
worker when the process that started it dies."""
