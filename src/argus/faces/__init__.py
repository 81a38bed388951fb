"""Face detection, alignment, embedding and emotion: numpy pre/post-processing shared by every backend."""
