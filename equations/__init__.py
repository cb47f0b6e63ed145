"""Brian2 model equations of nmbrl-brian, one module per model family.

This folder is installed as the subpackage ``nmbrl_brian.equations``. Every module
holds readable Brian2 equation strings with a unit on every line, the frozen
parameter dataclass that goes with them, and a header giving the maths and the paper.
"""
