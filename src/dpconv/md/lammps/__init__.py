"""The compiled LAMMPS pair style ``dpconv`` (C++ sources, CMake project, ``build``)."""
