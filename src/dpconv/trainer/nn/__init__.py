"""Building blocks of the se_e2_a energy model (all TorchScript-compatible).

* :mod:`.neighbor`: periodic images and type-split neighbour lists.
* :mod:`.env`: switching function and the 4-column environment matrix.
* :mod:`.networks`: DeePMD-style dense layers (tanh, skip, ``idt`` timestep).
* :mod:`.descriptor`: the se_e2_a descriptor ``D_i = T_iᵀ T_i[:, :M2]``.
* :mod:`.fitting`: one energy fitting net per atom type.
"""
