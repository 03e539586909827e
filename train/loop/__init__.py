"""The training loop: the model being trained (trainer, epoch, optim, augment, finetune) and the run loop."""
