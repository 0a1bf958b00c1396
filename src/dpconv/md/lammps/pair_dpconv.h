/* pair_style dpconv (alias deepmd): a dpconv/DeePMD-kit frozen TorchScript model in LAMMPS.
 * Torch stays out of this header (pimpl) so only pair_dpconv.cpp pays its compile time. */
#ifndef DPCONV_PAIR_DPCONV_H
#define DPCONV_PAIR_DPCONV_H

#include "pair.h"

#include <cstdio>
#include <string>
#include <vector>

namespace LAMMPS_NS {

struct DPConvModels;

class PairDPConv : public Pair {
 public:
  PairDPConv(class LAMMPS *);
  ~PairDPConv() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  void allocate();
  void model_deviation(const std::vector<double> &fdev, const std::vector<double> &vdev);

  DPConvModels *impl;
  std::vector<std::string> model_files;
  std::vector<std::string> type_map;
  std::vector<int> lut;    // LAMMPS type (1-based) -> model type, -1 ignored
  double rcut;
  int out_freq;
  std::string out_file;
  FILE *devi_fp;
  std::vector<double> fdev_buf;    // (nall, 3 * nmodels) for the reverse communication
  int nmodels_comm;
};

}    // namespace LAMMPS_NS

#endif
