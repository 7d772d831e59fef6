/* A pass-through PKCS#11 module, as an insider would write one: it forwards every call to the
 * real module and writes each C_Login (with the PIN) to the file named by CEREMONY_SPY_LOG.
 * It also writes "loaded" when the console loads it, so a test can tell "refused before the
 * module was loaded" from "loaded, but no login".
 *
 * Built by tests/security/spy.py with: cc -shared -fPIC -DREAL_MODULE="..." (no PKCS#11 headers
 * needed: the function list is 2 version bytes then 68 pointers; C_Login is the 19th). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef unsigned long ck_ulong;
typedef struct { unsigned char major, minor; } ck_version;
typedef struct { ck_version version; void *fn[68]; } function_list;
typedef ck_ulong (*get_function_list_fn)(function_list **);
typedef ck_ulong (*login_fn)(ck_ulong, ck_ulong, unsigned char *, ck_ulong);

enum { C_LOGIN = 18 };
static function_list spy_list;
static login_fn real_login;

static void note(const char *what, const unsigned char *pin, ck_ulong len) {
    const char *path = getenv("CEREMONY_SPY_LOG");
    if (path == NULL) return;
    FILE *f = fopen(path, "a");
    if (f == NULL) return;
    fputs(what, f);
    if (pin != NULL) {
        fputc(' ', f);
        for (ck_ulong i = 0; i < len; i++) fprintf(f, "%02x", pin[i]);
    }
    fputc('\n', f);
    fclose(f);
}

__attribute__((constructor)) static void loaded(void) { note("loaded", NULL, 0); }

static ck_ulong spy_login(ck_ulong session, ck_ulong user, unsigned char *pin, ck_ulong len) {
    note("C_Login", pin, len);
    return real_login(session, user, pin, len);
}

ck_ulong C_GetFunctionList(function_list **out) {
    void *real = dlopen(REAL_MODULE, RTLD_NOW | RTLD_LOCAL);
    if (real == NULL) return 5; /* CKR_GENERAL_ERROR */
    get_function_list_fn get = (get_function_list_fn)dlsym(real, "C_GetFunctionList");
    function_list *list = NULL;
    ck_ulong rv = get(&list);
    if (rv != 0) return rv;
    spy_list = *list;
    real_login = (login_fn)list->fn[C_LOGIN];
    spy_list.fn[C_LOGIN] = (void *)spy_login;
    /* C_GetFunctionList's own slot must point here, not at the real module. */
    spy_list.fn[3] = (void *)C_GetFunctionList;
    *out = &spy_list;
    return 0;
}
