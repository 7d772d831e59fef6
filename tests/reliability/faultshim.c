/* An LD_PRELOAD shim that makes one chosen write, fsync, rename, link, mkdir or create under a
 * folder fail with a chosen errno (tests only; built by tests/reliability/faultshim.py).
 *
 * Every call of a kind listed in FAULTSHIM_OPS whose file lies under FAULTSHIM_ROOT is a
 * "point", counted from 1 in call order. With FAULTSHIM_NTH=N the Nth point fails with
 * errno FAULTSHIM_ERRNO (ENOSPC, EIO, ...); with FAULTSHIM_STICKY=1 every later point fails
 * too (a disk that stays full). With FAULTSHIM_LOG=FILE each point is appended to FILE as
 * "<n>\t<kind>\t<path>\t<ok|FAIL>\n", so a first run lists the points and later runs pick one.
 * With FAULTSHIM_ACTION=kill the process SIGKILLs itself at the Nth point instead, before the
 * call runs (a power cut inside an SQLite commit, mid-export, between a write and its rename).
 *
 * A process that loaded the shim with FAULTSHIM_ROOT unset (a fork server) does nothing until
 * it calls faultshim_configure(), which reads the variables again and restarts the count.
 *
 * Kinds: write (write, pwrite, writev, pwritev, ftruncate), fsync (fsync, fdatasync),
 * rename (rename, renameat, renameat2), link (link, linkat), mkdir (mkdir, mkdirat),
 * create (open/openat with O_CREAT). A file's path comes from /proc/self/fd for descriptor
 * calls, so writes through descriptors opened relative to a folder are seen too.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int ready;
static char root[PATH_MAX];
static size_t root_len;
static char ops[256];
static long nth;
static int sticky;
static int fail_errno = EIO;
static int log_fd = -1;
static long counter;
static int kill_at_point;

static void setup(void) {
    if (ready) return;
    ready = 1;
    root_len = 0;
    counter = 0;
    if (log_fd >= 0) { syscall(SYS_close, log_fd); log_fd = -1; }
    const char *r = getenv("FAULTSHIM_ROOT");
    if (r == NULL || r[0] == '\0') return;
    snprintf(root, sizeof root, "%s", r);
    root_len = strlen(root);
    const char *o = getenv("FAULTSHIM_OPS");
    snprintf(ops, sizeof ops, ",%s,", o ? o : "write,fsync,rename,link,mkdir,create");
    const char *n = getenv("FAULTSHIM_NTH");
    nth = n ? atol(n) : 0;
    const char *s = getenv("FAULTSHIM_STICKY");
    sticky = s && s[0] == '1';
    const char *e = getenv("FAULTSHIM_ERRNO");
    if (e) fail_errno = atoi(e);
    const char *a = getenv("FAULTSHIM_ACTION");
    kill_at_point = a && strcmp(a, "kill") == 0;
    const char *l = getenv("FAULTSHIM_LOG");
    if (l && l[0]) log_fd = (int)syscall(SYS_openat, AT_FDCWD, l,
                                         O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

static int under_root(const char *path) {
    return root_len > 0 && strncmp(path, root, root_len) == 0 &&
           (path[root_len] == '/' || path[root_len] == '\0');
}

static void fd_path(int fd, char *out, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    out[n < 0 ? 0 : n] = '\0';
}

static void at_path(int dirfd, const char *path, char *out, size_t size) {
    if (path == NULL) { out[0] = '\0'; return; }
    if (path[0] == '/') { snprintf(out, size, "%s", path); return; }
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
        if (getcwd(base, sizeof base) == NULL) base[0] = '\0';
    } else {
        fd_path(dirfd, base, sizeof base);
    }
    snprintf(out, size, "%s/%s", base, path);
}

/* Opening or making something that exists allocates nothing: a full disk does not refuse it
 * (and the caller expects EEXIST, not ENOSPC), so only new names are points. */
static int exists(const char *path) {
    struct stat st;
    return syscall(SYS_newfstatat, AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* 1 when this call must fail (errno is then set). */
static int point(const char *kind, const char *path) {
    setup();
    if (root_len == 0 || !under_root(path)) return 0;
    char key[32];
    snprintf(key, sizeof key, ",%s,", kind);
    if (strstr(ops, key) == NULL) return 0;
    long n = ++counter;
    int fail = nth > 0 && (n == nth || (sticky && n > nth));
    if (log_fd >= 0) {
        char line[PATH_MAX + 96];
        int len = snprintf(line, sizeof line, "%ld\t%s\t%s\t%s\n", n, kind, path,
                           fail ? (kill_at_point ? "KILL" : "FAIL") : "ok");
        if (len > 0) syscall(SYS_write, log_fd, line, (size_t)len);
    }
    if (fail && kill_at_point) syscall(SYS_kill, syscall(SYS_getpid), SIGKILL);
    if (fail) errno = fail_errno;
    return fail;
}

/* Read the FAULTSHIM_* variables again (after a fork server set them) and restart the count. */
void faultshim_configure(void) {
    ready = 0;
    setup();
}

static int fd_point(const char *kind, int fd) {
    setup();
    if (root_len == 0) return 0;
    char path[PATH_MAX];
    fd_path(fd, path, sizeof path);
    return point(kind, path);
}

#define REAL(name) static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    if (fd > 2 && fd_point("write", fd)) return -1;
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    if (fd_point("write", fd)) return -1;
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    REAL(pwrite64);
    if (fd_point("write", fd)) return -1;
    return real_pwrite64(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev);
    if (fd > 2 && fd_point("write", fd)) return -1;
    return real_writev(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    REAL(pwritev);
    if (fd_point("write", fd)) return -1;
    return real_pwritev(fd, iov, iovcnt, offset);
}

int ftruncate(int fd, off_t length) {
    REAL(ftruncate);
    if (fd_point("write", fd)) return -1;
    return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off64_t length) {
    REAL(ftruncate64);
    if (fd_point("write", fd)) return -1;
    return real_ftruncate64(fd, length);
}

int fsync(int fd) {
    REAL(fsync);
    if (fd_point("fsync", fd)) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (fd_point("fsync", fd)) return -1;
    return real_fdatasync(fd);
}

static int rename_point(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    char a[PATH_MAX], b[PATH_MAX];
    at_path(newdirfd, newpath, b, sizeof b);
    at_path(olddirfd, oldpath, a, sizeof a);
    setup();
    return point("rename", under_root(b) ? b : a);
}

int rename(const char *oldpath, const char *newpath) {
    REAL(rename);
    if (rename_point(AT_FDCWD, oldpath, AT_FDCWD, newpath)) return -1;
    return real_rename(oldpath, newpath);
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    REAL(renameat);
    if (rename_point(olddirfd, oldpath, newdirfd, newpath)) return -1;
    return real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags) {
    REAL(renameat2);
    if (rename_point(olddirfd, oldpath, newdirfd, newpath)) return -1;
    return real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

int link(const char *oldpath, const char *newpath) {
    REAL(link);
    char b[PATH_MAX];
    at_path(AT_FDCWD, newpath, b, sizeof b);
    if (point("link", b)) return -1;
    return real_link(oldpath, newpath);
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags) {
    REAL(linkat);
    char b[PATH_MAX];
    at_path(newdirfd, newpath, b, sizeof b);
    if (point("link", b)) return -1;
    return real_linkat(olddirfd, oldpath, newdirfd, newpath, flags);
}

int mkdir(const char *path, mode_t mode) {
    REAL(mkdir);
    char b[PATH_MAX];
    at_path(AT_FDCWD, path, b, sizeof b);
    if (!exists(b) && point("mkdir", b)) return -1;
    return real_mkdir(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode) {
    REAL(mkdirat);
    char b[PATH_MAX];
    at_path(dirfd, path, b, sizeof b);
    if (!exists(b) && point("mkdir", b)) return -1;
    return real_mkdirat(dirfd, path, mode);
}

static int create_point(int dirfd, const char *path, int flags) {
    if (!(flags & O_CREAT)) return 0;
    char b[PATH_MAX];
    at_path(dirfd, path, b, sizeof b);
    if (exists(b)) return 0;
    return point("create", b);
}

#define OPEN_MODE(flags, mode) mode_t mode = 0; \
    if ((flags) & (O_CREAT | __O_TMPFILE)) { va_list ap; va_start(ap, flags); \
        mode = (mode_t)va_arg(ap, int); va_end(ap); }

int open(const char *path, int flags, ...) {
    REAL(open);
    OPEN_MODE(flags, mode);
    if (create_point(AT_FDCWD, path, flags)) return -1;
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    REAL(open64);
    OPEN_MODE(flags, mode);
    if (create_point(AT_FDCWD, path, flags)) return -1;
    return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    REAL(openat);
    OPEN_MODE(flags, mode);
    if (create_point(dirfd, path, flags)) return -1;
    return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(openat64);
    OPEN_MODE(flags, mode);
    if (create_point(dirfd, path, flags)) return -1;
    return real_openat64(dirfd, path, flags, mode);
}
