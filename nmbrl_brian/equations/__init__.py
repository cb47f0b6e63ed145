"""Brian2 model equations of nmbrl-brian, one module per model family.

This subpackage holds the maths of the package. Every module
holds readable Brian2 equation strings with a unit on every line, the frozen
parameter dataclass that goes with them, and a header giving the maths and the paper.
"""
