"""labctl: hardware-in-the-loop control and emulation of 1T1R ReRAM crossbar arrays."""

__version__ = "0.1.0"
