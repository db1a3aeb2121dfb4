/* chainmod: a C extension with a known call chain, for `record --native` and its tests.
 *
 *   chainmod.run_chain(callback)  ->  run_chain -> chain_a -> chain_b -> chain_c -> callback()   (back into Python)
 *   chainmod.spin(ms)             ->  spin -> spin_leaf (busy for `ms` of thread CPU time), its loop body
 *                                     spin_step inlined into it
 *
 * Each is kept as a real call (noinline, and work after each call so none is a tail call), so a
 * native unwind must show each of them once, in that order. Build:
 *   gcc -shared -fPIC -O2 -g -I$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])') \
 *       chainmod.c -o chainmod$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

static volatile unsigned long chain_calls, spin_sink;

static double thread_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline __attribute__((always_inline)) void spin_step(unsigned long i) {
  for (int k = 0; k < 20000; ++k) spin_sink = spin_sink * 31 + i + (unsigned long)k;
}

__attribute__((noinline)) static void spin_leaf(double seconds) {
  double end = thread_seconds() + seconds;
  for (unsigned long i = 0; thread_seconds() < end; ++i) spin_step(i);
}

__attribute__((noinline)) static PyObject* chain_c(PyObject* callback) {
  PyObject* result = PyObject_CallObject(callback, NULL);
  chain_calls++;
  return result;
}

__attribute__((noinline)) static PyObject* chain_b(PyObject* callback) {
  PyObject* result = chain_c(callback);
  chain_calls++;
  return result;
}

__attribute__((noinline)) static PyObject* chain_a(PyObject* callback) {
  PyObject* result = chain_b(callback);
  chain_calls++;
  return result;
}

static PyObject* run_chain(PyObject* self, PyObject* callback) {
  (void)self;
  PyObject* result = chain_a(callback);
  chain_calls++;
  return result;
}

static PyObject* spin(PyObject* self, PyObject* arg) {
  (void)self;
  double ms = PyFloat_AsDouble(arg);
  if (ms < 0 && PyErr_Occurred()) return NULL;
  spin_leaf(ms / 1000.0);
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"run_chain", run_chain, METH_O, "Calls callback() through chain_a -> chain_b -> chain_c."},
    {"spin", spin, METH_O, "Busy for the given milliseconds of thread CPU time, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "chainmod", NULL, -1, methods};

PyMODINIT_FUNC PyInit_chainmod(void) { return PyModule_Create(&module); }
