/* Runs inside an environment (built with gcc -static by crates/airlock-runner/tests/hostile_environments.rs).
 * Tries one system call per line, each in a forked child so that a call that succeeds changes
 * nothing for the next one, and prints `<probe> ok` or `<probe> <ERRNO name>`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* A clone-style call: 0 in the child (which leaves at once), the pid in the parent. */
static long reap(long pid) {
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid < 0 ? -1 : 0;
}

struct clone_args_v0 { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

static void *thread_main(void *arg) { return arg; }

static long probe(const char *name) {
    if (!strcmp(name, "unshare-user")) return unshare(CLONE_NEWUSER);
    if (!strcmp(name, "unshare-net")) return unshare(CLONE_NEWNET);
    if (!strcmp(name, "unshare-mount")) return unshare(CLONE_NEWNS);
    if (!strcmp(name, "clone-newuser")) return reap(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    if (!strcmp(name, "clone-newpid")) return reap(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0));
    if (!strcmp(name, "clone-newnet")) return reap(syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
    if (!strcmp(name, "clone3")) {
        struct clone_args_v0 a = {.exit_signal = SIGCHLD};
        return reap(syscall(SYS_clone3, &a, sizeof a));
    }
    if (!strcmp(name, "setns")) {
        int fd = open("/proc/self/ns/uts", O_RDONLY);
        return setns(fd, 0);
    }
    if (!strcmp(name, "mount")) return mount("none", "/tmp", "tmpfs", 0, NULL);
    if (!strcmp(name, "umount")) return umount2("/proc", MNT_DETACH);
    if (!strcmp(name, "pivot_root")) return syscall(SYS_pivot_root, "/", "/");
    if (!strcmp(name, "fsopen")) return syscall(SYS_fsopen, "tmpfs", 0);
    if (!strcmp(name, "fsmount")) return syscall(SYS_fsmount, -1, 0, 0);
    if (!strcmp(name, "fspick")) return syscall(SYS_fspick, AT_FDCWD, "/tmp", 0);
    if (!strcmp(name, "open_tree")) return syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1 /* OPEN_TREE_CLONE */);
    if (!strcmp(name, "move_mount")) return syscall(SYS_move_mount, AT_FDCWD, "/tmp", AT_FDCWD, "/mnt", 0);
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 1);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "probe", "x", 1, -3);
    if (!strcmp(name, "bpf")) return syscall(SYS_bpf, 0, NULL, 0);
    if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0);
    if (!strcmp(name, "io_uring_setup")) return syscall(SYS_io_uring_setup, 1, NULL);
    if (!strcmp(name, "init_module")) return syscall(SYS_init_module, NULL, 0, "");
    if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, NULL, 0);
    if (!strcmp(name, "sethostname")) return sethostname("probe", 5);
    if (!strcmp(name, "socket-vsock")) return socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
    if (!strcmp(name, "personality-no-aslr")) return personality(ADDR_NO_RANDOMIZE) == -1 ? -1 : 0;
    /* What developer tools do: these must work. */
    if (!strcmp(name, "fork-exec")) {
        pid_t pid = fork();
        if (pid == 0) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : (errno = ECHILD, -1);
    }
    if (!strcmp(name, "posix_spawn")) {
        pid_t pid;
        char *argv[] = {"true", NULL};
        int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
        if (rc) return errno = rc, -1;
        return waitpid(pid, NULL, 0) < 0 ? -1 : 0;
    }
    if (!strcmp(name, "threads")) {
        pthread_t t;
        int rc = pthread_create(&t, NULL, thread_main, NULL);
        if (rc) return errno = rc, -1;
        return pthread_join(t, NULL);
    }
    if (!strcmp(name, "loopback-tcp")) {
        int s = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        if (s < 0 || c < 0 || bind(s, (void *)&a, sizeof a) || listen(s, 1) || getsockname(s, (void *)&a, &len)) return -1;
        return connect(c, (void *)&a, sizeof a);
    }
    if (!strcmp(name, "event-loop")) {
        int ep = epoll_create1(0), ev = eventfd(0, 0), tf = timerfd_create(CLOCK_MONOTONIC, 0);
        struct epoll_event e = {.events = EPOLLIN};
        return ep < 0 || ev < 0 || tf < 0 ? -1 : epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
    }
    if (!strcmp(name, "jit-memory")) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return -1;
        return mprotect(p, 4096, PROT_READ | PROT_EXEC);
    }
    if (!strcmp(name, "memfd")) return memfd_create("probe", 0) < 0 ? -1 : 0;
    if (!strcmp(name, "getrandom")) { char b[8]; return getrandom(b, sizeof b, 0) < 0 ? -1 : 0; }
    if (!strcmp(name, "mkfifo")) { unlink("/tmp/probe.fifo"); return mkfifo("/tmp/probe.fifo", 0600); }
    if (!strcmp(name, "ptrace-own-child")) {
        pid_t pid = fork();
        if (pid == 0) { if (ptrace(PTRACE_TRACEME, 0, NULL, NULL)) _exit(1); raise(SIGSTOP); _exit(0); }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSTOPPED(status)) return errno = EPERM, -1;
        ptrace(PTRACE_CONT, pid, NULL, NULL);
        waitpid(pid, &status, 0);
        return 0;
    }
    errno = EINVAL;
    return -1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int pipefd[2];
        if (pipe(pipefd)) return 2;
        pid_t pid = fork();
        if (pid == 0) {
            long rc = probe(argv[i]);
            int err = rc < 0 ? errno : 0;
            (void)!write(pipefd[1], &err, sizeof err);
            _exit(0);
        }
        close(pipefd[1]);
        int err = -1;
        if (read(pipefd[0], &err, sizeof err) != sizeof err) err = -1;
        close(pipefd[0]);
        waitpid(pid, NULL, 0);
        if (err == 0) printf("%s ok\n", argv[i]);
        else if (err < 0) printf("%s died\n", argv[i]);
        else printf("%s %s\n", argv[i], strerrorname_np(err));
        fflush(stdout);
    }
    return 0;
}
