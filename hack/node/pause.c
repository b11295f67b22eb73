// The pod sandbox's process (containerd's `pinned_images.sandbox`): it holds the pod's
// namespaces and nothing else. Upstream's pause image cannot be pulled here, so the
// node's sandbox image is built from this file (hack/build-images.sh).
//
// As PID 1 it gets no default signal actions: SIGINT/SIGTERM must be handled to stop,
// and SIGCHLD to reap processes that get re-parented to it.
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int signo) {
  (void)signo;
  _exit(0);
}

static void on_child(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &stop, NULL);
  sigaction(SIGTERM, &stop, NULL);
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
}
