/* dpconvplugin.so: the object LAMMPS loads (it scans LAMMPS_PLUGIN_PATH for '*plugin.so').
 *
 * It links neither torch nor the pair style. lmp links liblammps.so, which exports a reference
 * BLAS (dgemm_, dgemv_, ...); libtorch_cpu.so exports MKL's under the same names and calls them
 * through the symbol table, so when libtorch is loaded into lmp's global scope its matrix
 * products bind to LAMMPS' unoptimised dgemm_ (about 3x slower model evaluation, measured).
 * This loader therefore opens the real pair style, dpconv_pair.so, and with it libtorch, with
 * RTLD_DEEPBIND: those libraries look up symbols in their own dependency tree before the
 * global scope. LAMMPS and MPI symbols, which only liblammps and libmpi define, still come from
 * the global scope. DPCONV_NO_DEEPBIND=1 turns this off (for diagnosis and the test that shows
 * the pair style's check, foreign_blas() in pair_dpconv.cpp, notices the difference). */
#include "lammpsplugin.h"

#include "error.h"
#include "lammps.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#ifndef RTLD_DEEPBIND
#define RTLD_DEEPBIND 0    // not glibc: plain local loading
#endif

// Where this object lies: the address of an internal symbol (lammpsplugin_init itself may resolve
// to another plugin's, e.g. DeePMD-kit's, loaded earlier into the global scope).
static char anchor;

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto *lammps = static_cast<LAMMPS_NS::LAMMPS *>(lmp);
  std::string dir = ".";
  Dl_info info;
  if (dladdr((void *) &anchor, &info) != 0 && info.dli_fname != nullptr) {
    std::string self = info.dli_fname;
    auto slash = self.find_last_of('/');
    if (slash != std::string::npos) dir = self.substr(0, slash);
  }
  std::string impl = dir + "/dpconv_pair.so";
  const char *off = std::getenv("DPCONV_NO_DEEPBIND");
  int deep = (off && *off && *off != '0') ? 0 : RTLD_DEEPBIND;
  void *h = dlopen(impl.c_str(), RTLD_NOW | RTLD_LOCAL | deep);
  if (h == nullptr) {
    const char *why = dlerror();
    lammps->error->all(FLERR, "dpconv plugin: cannot load " + impl + ": " + (why ? why : "unknown error") +
                           " (rebuild with 'dpconv lammps build')");
    return;
  }
  auto init = (lammpsplugin_initfunc) dlsym(h, "dpconv_register_styles");
  if (init == nullptr) {
    lammps->error->all(FLERR, "dpconv plugin: " + impl + " has no dpconv_register_styles (rebuild it)");
    return;
  }
  (*init)(lmp, handle, regfunc);
}
