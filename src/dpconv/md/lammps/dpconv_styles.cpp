/* dpconv_register_styles, called by the loader (dpconv_plugin.cpp): registers pair style
 * "dpconv" and, unless a "deepmd" pair style is already known (e.g. DeePMD-kit's own plugin)
 * or DPCONV_NO_DEEPMD_ALIAS is set, "deepmd". */
#include "lammpsplugin.h"

#include "force.h"
#include "lammps.h"
#include "pair_dpconv.h"

#include <cstdlib>

using namespace LAMMPS_NS;

static Pair *dpconv_creator(LAMMPS *lmp) { return new PairDPConv(lmp); }

extern "C" void dpconv_register_styles(void *lmp, void *handle, void *regfunc)
{
  auto *lammps = static_cast<LAMMPS *>(lmp);
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  lammpsplugin_t plugin;
  plugin.version = lammps->version;    // built against this installation's headers
  plugin.style = "pair";
  plugin.name = "dpconv";
  plugin.info = "dpconv frozen-model pair style (TorchScript, libtorch)";
  plugin.author = "dpconv";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &dpconv_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);

  bool have_deepmd = lammps->force && lammps->force->pair_map &&
      lammps->force->pair_map->find("deepmd") != lammps->force->pair_map->end();
  const char *no_alias = std::getenv("DPCONV_NO_DEEPMD_ALIAS");
  if (!have_deepmd && !(no_alias && *no_alias && *no_alias != '0')) {
    plugin.name = "deepmd";
    plugin.info = "alias of pair style dpconv";
    (*register_plugin)(&plugin, lmp);
  }
}
