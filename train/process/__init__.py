"""The training process and its peers: torchrun's process group (distributed) and the thread policy (threads)."""
