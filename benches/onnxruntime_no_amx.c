// LD_PRELOAD shim for benches/cpu_vs_onnxruntime.sh: refuses the AMX tile-data permission
// request (arch_prctl ARCH_REQ_XCOMP_PERM through libc's syscall()), so that onnxruntime's
// MLAS, which asks for it before choosing its AMX kernels, falls back to AVX-512 VNNI. MLAS
// has no run-time switch for its instruction set; this is the one choice that can be forced.
//
//   cc -O2 -shared -fPIC benches/onnxruntime_no_amx.c -o target/onnxruntime_no_amx.so -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
long syscall(long number, ...) {
  va_list ap; va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_arch_prctl && a1 == 0x1023) { errno = EPERM; return -1; }
  static long (*real)(long, ...);
  if (!real) real = dlsym(RTLD_NEXT, "syscall");
  return real(number, a1, a2, a3, a4, a5, a6);
}
