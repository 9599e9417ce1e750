/* assert() compiled out: the third-party code is built with NDEBUG
 * semantics, and the engine reports errors instead of asserting. */
#ifndef QB_LIBC_MINI_ASSERT_H
#define QB_LIBC_MINI_ASSERT_H
#define assert(x) ((void)0)
#endif
