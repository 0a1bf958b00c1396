/* pair_style dpconv m0.pth [m1.pth ...] [out_freq N] [out_file F]
 *
 * Each step: the owned and ghost atoms (LAMMPS' domain decomposition, newton pair on) and
 * LAMMPS' full neighbour list go to the model's forward_lower(); it returns the owned atoms'
 * energy, forces on owned and ghost atoms (LAMMPS reverse-communicates the ghost forces), the
 * virial and per-atom virials. Several models: the first drives the dynamics; every out_freq
 * steps all are evaluated and DeePMD-kit's model-deviation row is written to out_file. */
#include "pair_dpconv.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <torch/script.h>
#include <ATen/Parallel.h>

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

using namespace LAMMPS_NS;

// libtorch's matrix products go through the exported dgemm_; where another library in the
// process (lmp's liblammps.so ships a reference BLAS) takes the name first, they run unoptimised.
extern "C" void dgemm_() __attribute__((weak));

/* The library dgemm_ binds to from here (and from libtorch, loaded beside this library) when it
 * is not libtorch_cpu's own; "" when it is, or when there is nothing to compare. */
static std::string foreign_blas()
{
  void *bound = (void *) &dgemm_;
  if (bound == nullptr) return "";
  void *h = dlopen("libtorch_cpu.so", RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return "";
  void *own = dlsym(h, "dgemm_");
  dlclose(h);
  if (own == nullptr || own == bound) return "";
  Dl_info info;
  if (dladdr(bound, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "another library";
}

namespace LAMMPS_NS {
struct DPConvModels {
  std::vector<torch::jit::script::Module> modules;
};
}    // namespace LAMMPS_NS

PairDPConv::PairDPConv(LAMMPS *lmp) :
    Pair(lmp), impl(new DPConvModels), rcut(0.0), out_freq(100), out_file("model_devi.out"),
    devi_fp(nullptr), nmodels_comm(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  comm_reverse = 0;
  const char *nt = std::getenv("DPCONV_NUM_THREADS");
  if (nt && std::atoi(nt) > 0) at::set_num_threads(std::atoi(nt));
#if defined(__GLIBC__)
  // keep the pages of the model's big short-lived tensors in the process (dpconv/trainer/malloc.py:
  // glibc's defaults hand them back and fault them in again on every step)
  const char *nm = std::getenv("DPCONV_NO_MALLOPT");
  if (!nm || !*nm || std::strcmp(nm, "0") == 0) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
#endif
}

PairDPConv::~PairDPConv()
{
  if (devi_fp) fclose(devi_fp);
  delete impl;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairDPConv::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

void PairDPConv::settings(int narg, char **arg)
{
  model_files.clear();
  impl->modules.clear();
  int i = 0;
  while (i < narg) {
    std::string a = arg[i];
    if (a == "out_freq" || a == "out_file") {
      if (i + 1 >= narg) error->all(FLERR, "pair_style dpconv: {} needs a value", a);
      if (a == "out_freq") {
        out_freq = std::atoi(arg[i + 1]);
        if (out_freq <= 0) error->all(FLERR, "pair_style dpconv: out_freq must be positive");
      } else {
        out_file = arg[i + 1];
      }
      i += 2;
    } else if (a == "fparam" || a == "aparam" || a == "atomic" || a == "relative" || a == "relative_v" ||
               a == "ttm" || a == "fparam_from_compute") {
      error->all(FLERR, "pair_style dpconv: keyword {} is not supported (se_e2_a energy models)", a);
    } else {
      model_files.push_back(a);
      i += 1;
    }
  }
  if (model_files.empty()) error->all(FLERR, "pair_style dpconv needs at least one model file");
  for (size_t m = 0; m < model_files.size(); m++) {
    torch::jit::script::Module mod;
    try {
      mod = torch::jit::load(model_files[m], torch::kCPU);
    } catch (const std::exception &e) {
      error->all(FLERR, "pair_style dpconv: cannot load model {}: {}", model_files[m], e.what());
    }
    if (!mod.find_method("forward_lower"))
      error->all(FLERR, "pair_style dpconv: model {} has no forward_lower (freeze it with a newer dpconv)",
                 model_files[m]);
    mod.eval();
    std::vector<std::string> tm;
    for (const auto &v : mod.get_method("get_type_map")({}).toList()) tm.push_back(v.get().toStringRef());
    double rc = mod.get_method("get_rcut")({}).toDouble();
    if (m == 0) {
      type_map = tm;
      rcut = rc;
    } else {
      if (tm != type_map)
        error->all(FLERR, "pair_style dpconv: model {} has a different type map", model_files[m]);
      rcut = std::max(rcut, rc);
    }
    impl->modules.push_back(mod);
  }
  std::string blas = foreign_blas();
  if (!blas.empty() && comm->me == 0)
    error->warning(FLERR,
                   "pair_style dpconv: torch's BLAS (dgemm_) binds to {}, model evaluation will be about 3x "
                   "slower; load dpconvplugin.so (it isolates torch), not dpconv_pair.so",
                   blas);
  nmodels_comm = model_files.size() > 1 ? (int) model_files.size() : 0;
  comm_reverse = 3 * nmodels_comm;
  if (nmodels_comm && comm->me == 0) {
    if (devi_fp) fclose(devi_fp);
    devi_fp = fopen(out_file.c_str(), "w");
    if (!devi_fp) error->one(FLERR, "pair_style dpconv: cannot open {}", out_file);
    fprintf(devi_fp, "#%11s%19s%19s%19s%19s%19s%19s\n", "step", "max_devi_v", "min_devi_v", "avg_devi_v",
            "max_devi_f", "min_devi_f", "avg_devi_f");
    fflush(devi_fp);
  }
}

void PairDPConv::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg < 2 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_style dpconv takes 'pair_coeff * * [name ...]'");
  lut.assign(ntypes + 1, -1);
  int nnames = narg - 2;
  if (nnames == 0) {
    if (ntypes > (int) type_map.size())
      error->all(FLERR, "pair_style dpconv: {} atom types but the model has {}; name them in pair_coeff", ntypes,
                 type_map.size());
    for (int t = 1; t <= ntypes; t++) lut[t] = t - 1;
  } else {
    if (nnames != ntypes)
      error->all(FLERR, "pair_coeff * * names {} types, the system has {}", nnames, ntypes);
    for (int t = 1; t <= ntypes; t++) {
      std::string name = arg[t + 1];
      if (name == "NULL") continue;
      auto it = std::find(type_map.begin(), type_map.end(), name);
      if (it == type_map.end()) error->all(FLERR, "pair_coeff: {} is not in the model's type map", name);
      lut[t] = (int) (it - type_map.begin());
    }
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairDPConv::init_style()
{
  if (force->newton_pair == 0) error->all(FLERR, "pair_style dpconv requires newton pair on");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style dpconv requires 'units metal' (eV, Angstrom)");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairDPConv::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "pair_coeff * * was not given for pair_style dpconv");
  return rcut;
}

int PairDPConv::pack_reverse_comm(int n, int first, double *buf)
{
  int w = 3 * nmodels_comm, m = 0;
  for (int i = first; i < first + n; i++)
    for (int k = 0; k < w; k++) buf[m++] = fdev_buf[(size_t) i * w + k];
  return m;
}

void PairDPConv::unpack_reverse_comm(int n, int *list, double *buf)
{
  int w = 3 * nmodels_comm, m = 0;
  for (int i = 0; i < n; i++) {
    int j = list[i];
    for (int k = 0; k < w; k++) fdev_buf[(size_t) j * w + k] += buf[m++];
  }
}

void PairDPConv::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  int nlocal = atom->nlocal;
  int nall = nlocal + atom->nghost;
  double **x = atom->x;
  double **f = atom->f;
  int *type = atom->type;

  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor coord = torch::from_blob(&x[0][0], {1, nall, 3}, f64).clone();
  torch::Tensor atype = torch::empty({1, nall}, i64);
  auto *pt = atype.data_ptr<int64_t>();
  for (int i = 0; i < nall; i++) pt[i] = lut[type[i]];

  int inum = list->inum;
  int *ilist = list->ilist, *numneigh = list->numneigh, **firstneigh = list->firstneigh;
  int maxnn = 0;
  for (int ii = 0; ii < inum; ii++) maxnn = std::max(maxnn, numneigh[ilist[ii]]);
  torch::Tensor nl = torch::full({1, nlocal, std::max(maxnn, 1)}, -1, i64);
  auto *pn = nl.data_ptr<int64_t>();
  int w = std::max(maxnn, 1);
  for (int ii = 0; ii < inum; ii++) {
    int i = ilist[ii];
    if (i >= nlocal) continue;
    for (int jj = 0; jj < numneigh[i]; jj++) pn[(size_t) i * w + jj] = firstneigh[i][jj] & NEIGHMASK;
  }

  bool devi = nmodels_comm > 0 && update->ntimestep % out_freq == 0;
  size_t nm = devi ? impl->modules.size() : 1;
  bool atomic_virial = vflag_atom != 0;
  std::vector<double> vdev;
  if (devi) {
    fdev_buf.assign((size_t) nall * 3 * nmodels_comm, 0.0);
    vdev.assign(9 * nm, 0.0);
  }
  for (size_t m = 0; m < nm; m++) {
    std::vector<c10::IValue> inputs{coord, atype, (int64_t) nlocal, nl, m == 0 && atomic_virial};
    c10::IValue res;
    try {
      res = impl->modules[m].get_method("forward_lower")(inputs);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style dpconv: model evaluation failed: {}", e.what());
    }
    auto out = res.toGenericDict();
    torch::Tensor fe = out.at("extended_force").toTensor().to(torch::kFloat64).contiguous();
    torch::Tensor vir = out.at("virial").toTensor().to(torch::kFloat64).contiguous();
    const double *pf = fe.data_ptr<double>();
    const double *pv = vir.data_ptr<double>();
    if (m == 0) {
      for (int i = 0; i < nall; i++)
        for (int k = 0; k < 3; k++) f[i][k] += pf[3 * i + k];
      if (eflag_global) eng_vdwl += out.at("energy").toTensor().to(torch::kFloat64).item<double>();
      if (eflag_atom) {
        torch::Tensor ae = out.at("atom_energy").toTensor().to(torch::kFloat64).contiguous();
        const double *pa = ae.data_ptr<double>();
        for (int i = 0; i < nlocal; i++) eatom[i] += pa[i];
      }
      if (vflag_global) {
        virial[0] += pv[0];
        virial[1] += pv[4];
        virial[2] += pv[8];
        virial[3] += pv[1];
        virial[4] += pv[2];
        virial[5] += pv[5];
      }
      if (vflag_atom) {
        torch::Tensor av = out.at("extended_virial").toTensor().to(torch::kFloat64).contiguous();
        const double *pa = av.data_ptr<double>();
        for (int i = 0; i < nall; i++) {
          vatom[i][0] += pa[9 * i + 0];
          vatom[i][1] += pa[9 * i + 4];
          vatom[i][2] += pa[9 * i + 8];
          vatom[i][3] += pa[9 * i + 1];
          vatom[i][4] += pa[9 * i + 2];
          vatom[i][5] += pa[9 * i + 5];
        }
      }
    }
    if (devi) {
      size_t wd = 3 * nmodels_comm;
      for (int i = 0; i < nall; i++)
        for (int k = 0; k < 3; k++) fdev_buf[(size_t) i * wd + 3 * m + k] = pf[3 * i + k];
      for (int k = 0; k < 9; k++) vdev[9 * m + k] = pv[k];
    }
  }
  if (devi) {
    comm->reverse_comm(this);
    model_deviation(fdev_buf, vdev);
  }
}

void PairDPConv::model_deviation(const std::vector<double> &fdev, const std::vector<double> &vdev)
{
  int nm = nmodels_comm, nlocal = atom->nlocal;
  size_t wd = 3 * nm;
  double fmax = 0.0, fmin = std::numeric_limits<double>::max(), fsum = 0.0;
  for (int i = 0; i < nlocal; i++) {
    if (lut[atom->type[i]] < 0) continue;
    double mean[3] = {0.0, 0.0, 0.0};
    for (int m = 0; m < nm; m++)
      for (int k = 0; k < 3; k++) mean[k] += fdev[i * wd + 3 * m + k] / nm;
    double s = 0.0;
    for (int m = 0; m < nm; m++)
      for (int k = 0; k < 3; k++) {
        double d = fdev[i * wd + 3 * m + k] - mean[k];
        s += d * d;
      }
    double dev = std::sqrt(s / nm);
    fmax = std::max(fmax, dev);
    fmin = std::min(fmin, dev);
    fsum += dev;
  }
  double gmax, gmin, gsum;
  MPI_Allreduce(&fmax, &gmax, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&fmin, &gmin, 1, MPI_DOUBLE, MPI_MIN, world);
  MPI_Allreduce(&fsum, &gsum, 1, MPI_DOUBLE, MPI_SUM, world);
  std::vector<double> vall(vdev.size(), 0.0);
  MPI_Allreduce(vdev.data(), vall.data(), (int) vdev.size(), MPI_DOUBLE, MPI_SUM, world);
  double natoms = (double) atom->natoms;
  double vmax = 0.0, vmin = std::numeric_limits<double>::max(), vsq = 0.0;
  for (int k = 0; k < 9; k++) {
    double mean = 0.0, s = 0.0;
    for (int m = 0; m < nm; m++) mean += vall[9 * m + k] / nm;
    for (int m = 0; m < nm; m++) s += (vall[9 * m + k] - mean) * (vall[9 * m + k] - mean);
    double dev = std::sqrt(s / nm) / natoms;
    vmax = std::max(vmax, dev);
    vmin = std::min(vmin, dev);
    vsq += dev * dev;
  }
  if (comm->me == 0 && devi_fp) {
    fprintf(devi_fp, "%12lld%19.6e%19.6e%19.6e%19.6e%19.6e%19.6e\n", (long long) update->ntimestep, vmax, vmin,
            std::sqrt(vsq / 9.0), gmax, gmin, gsum / natoms);
    fflush(devi_fp);
  }
}
