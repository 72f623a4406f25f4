/* PID 1 of a pooled execution environment (built by scripts/build-native.sh, static).
 *
 * B, the environment's first process, forks C (which becomes the runtime) and then execs this
 * program, so that an idle environment's PID 1 costs ~100 KiB instead of a Python
 * interpreter's private pages (1.4 MiB). _init in _brazier_child.py is the same protocol in
 * Python, used when this binary is absent.
 *
 *   brazier-init <C's pid> <control socket fd> <C's socket fd>
 *
 * B drops to nobody (65534, no capabilities, no_new_privs) before the exec. C writes one line
 * on its socket, "x", just before it execs a runtime. When the socket closes, PID 1 reaps every process of the sandbox
 * (orphans are re-parented to it) until C ends, sends C's wait status on the control socket
 * ({"t": "exit", "status": N}; after an "x", {"t": "running"} first if C is alive, i.e. its
 * exec succeeded) and exits, which ends the sandbox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int ctl = -1;
static pid_t child;

static void say(const char *msg) { (void)send(ctl, msg, strlen(msg), MSG_NOSIGNAL); }

int main(int argc, char **argv) {
    if (argc != 4)
        return 111;
    child = (pid_t)atoi(argv[1]);
    ctl = atoi(argv[2]);
    int sock = atoi(argv[3]);
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    char buf[512];
    size_t len = 0;
    int execing = 0;
    for (;;) {
        ssize_t n = read(sock, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = 0;
            if (buf[0] == 'x')
                execing = 1;
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, len - used);
            len -= used;
        }
        if (len == sizeof buf - 1)
            break; /* no line this long is ever sent */
    }
    close(sock);
    int status = 0, have = 0;
    if (execing) {
        pid_t p = waitpid(child, &status, WNOHANG);
        if (p == 0)
            say("{\"t\": \"running\"}");
        else if (p == child)
            have = 1;
    }
    while (!have) {
        pid_t p = waitpid(-1, &status, 0);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            status = 0;
            break;
        }
        if (p == child)
            have = 1;
    }
    char msg[64];
    snprintf(msg, sizeof msg, "{\"t\": \"exit\", \"status\": %d}", status);
    say(msg);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
