// Wraps the Vulkan loader so lavapipe (Mesa 22.3) passes Dawn's adapter checks: it reports the
// *ArrayDynamicIndexing features (and BC textures) as supported, and clears them again from the features
// Dawn then asks for at vkCreateDevice (tfjs shaders never index descriptor arrays). Test use only.
// LOADER (a -D define from run.sh) is the real libvulkan.so.1 this shim forwards to.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>
typedef void (*PFN)(void);
typedef PFN (*PFN_gipa)(void*, const char*);
static void* real;
static PFN_gipa real_gipa;
static void (*real_feat)(void*, uint32_t*);
static void (*real_feat2)(void*, void*);
static void (*real_feat2k)(void*, void*);
static uint32_t realf[55]; static int have;
static void fix(uint32_t* f) { memcpy(realf, f, sizeof realf); have = 1; for (int i = 33; i <= 36; i++) f[i] = 1; f[22] = 1; }
static void unfix(uint32_t* f) { if (!have) return; for (int i = 33; i <= 36; i++) f[i] &= realf[i]; f[22] &= realf[22]; }
typedef struct { uint32_t sType; uint32_t pad; void* pNext; } Base;
static int (*real_cd)(void*, void*, const void*, void*);
static int my_cd(void* pd, void* ci, const void* alloc, void* dev) {
  uint32_t** pef = (uint32_t**)((char*)ci + 64);
  if (*pef) unfix(*pef);
  for (Base* b = ((Base*)ci)->pNext; b; b = b->pNext) if (b->sType == 1000059000u) unfix((uint32_t*)((char*)b + 16));
  return real_cd(pd, ci, alloc, dev);
}
static void my_feat(void* pd, uint32_t* f) { real_feat(pd, f); fix(f); }
static void my_feat2(void* pd, void* f2) { real_feat2(pd, f2); fix((uint32_t*)((char*)f2 + 16)); }
static void my_feat2k(void* pd, void* f2) { real_feat2k(pd, f2); fix((uint32_t*)((char*)f2 + 16)); }
static void init(void) {
  if (real) return;
  real = dlopen(LOADER, RTLD_NOW | RTLD_LOCAL);
  if (!real) { fprintf(stderr, "shim: %s\n", dlerror()); return; }
  real_gipa = (PFN_gipa)dlsym(real, "vkGetInstanceProcAddr");
}
PFN vkGetInstanceProcAddr(void* inst, const char* name) {
  init();
  PFN p = real_gipa(inst, name);
  if (!p) return p;
  if (!strcmp(name, "vkGetPhysicalDeviceFeatures")) { real_feat = (void*)p; return (PFN)my_feat; }
  if (!strcmp(name, "vkGetPhysicalDeviceFeatures2")) { real_feat2 = (void*)p; return (PFN)my_feat2; }
  if (!strcmp(name, "vkGetPhysicalDeviceFeatures2KHR")) { real_feat2k = (void*)p; return (PFN)my_feat2k; }
  if (!strcmp(name, "vkCreateDevice")) { real_cd = (void*)p; return (PFN)my_cd; }
  return p;
}
