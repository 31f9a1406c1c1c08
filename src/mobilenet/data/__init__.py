"""Data: the bundled digits, CIFAR-10/100 archives, ImageFolder trees, image decoding and augmentation."""
