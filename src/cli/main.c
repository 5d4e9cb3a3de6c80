/* main.c - the kdtrain binary: parses the subcommand and dispatches through a table. */
#define _XOPEN_SOURCE 700 /* sigaltstack, SA_ONSTACK */
#include "cli/commands.h"
#include "kd_version.h"
#ifdef KD_HAVE_MPI
#include "mpi/comm_mpi.h"
#endif

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define KD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KD_SANITIZED 1
#endif
#endif

typedef struct kd_command {
    const char *name;
    int (*run)(int argc, char **argv);                   /* one process */
    int (*run_job)(int argc, char **argv, kd_comm *comm); /* or one job over mpirun's ranks */
    const char *summary;
} kd_command;

static const kd_command commands[] = {
    {"prepare", kd_cmd_prepare, NULL, "import a data set (fashion-mnist) into kdtrain's HDF5 schema"},
    {"train", NULL, kd_cmd_train, "train a model from a config"},
    {"distill", NULL, kd_cmd_distill, "train a student by distillation from a teacher"},
    {"calibrate", kd_cmd_calibrate, NULL, "calibrate a kdtrain model (one exact T), or any model's logits with every calibrator; reports"},
    {"eval", kd_cmd_eval, NULL, "evaluate a model: accuracy, NLL, ECE, confusion matrix (JSON)"},
    {"run", NULL, kd_cmd_run, "run a whole experiment: teacher, students alone and distilled, over seeds"},
    {"sweep", NULL, kd_cmd_sweep, "the overfitting diagnostic: the fitted temperature against epoch, width, regularisation"},
    {"gaussian", kd_cmd_gaussian, NULL, "Gaussian clusters: the learned temperature against the Bayes-optimal 1/(2 sigma^2)"},
    {"export", kd_cmd_export, NULL, "write a model as a standard ONNX file (optionally with its temperature folded in)"},
    {"info", kd_cmd_info, NULL, "what a data set, checkpoint or logits file holds; without one, versions and the CPU"},
};

void kd_cli_report_error(const char *command, const kd_comm *comm, const kd_error *err)
{
    if (!kd_comm_parallel(comm)) {
        fprintf(stderr, "%s: %s\n", command, err->message);
        return;
    }
    /* another rank's failure, known to all: rank 0 says it; a failure every rank found
     * alike (check_same_job's verdict): rank 0 says it */
    if (comm->rank != 0 && (comm->failure_agreed == 2 || (comm->failure_agreed && err->code == KD_ERR_PEER))) return;
    fprintf(stderr, "%s (rank %d of %d): %s\n", command, comm->rank, comm->size, err->message);
}

/* A memory fault inside a library reading a damaged file (fuzzing found libhdf5
 * 1.10.8 copying a global-heap object of a damaged length, reached through a
 * variable-length string attribute) ends the process with a message and exit status
 * 1, not a core dump. Outputs are written to temporary files and renamed, so no file
 * the user had is replaced. Not under the sanitizers, whose reports are the point. */
#ifndef KD_SANITIZED
static void on_fault(int sig)
{
    static const char message[] = "kdtrain: a fatal memory fault while reading the input (most likely a damaged "
                                  "HDF5 file that crashed libhdf5); no output file was replaced\n";
    (void)sig;
    ssize_t written = write(STDERR_FILENO, message, sizeof message - 1);
    (void)written;
    _exit(1);
}

#endif

static void catch_faults(void)
{
#ifndef KD_SANITIZED
    static char alternate_stack[1 << 16]; /* the handler's stack, for a fault that overflowed the main one */
    stack_t ss = {.ss_sp = alternate_stack, .ss_size = sizeof alternate_stack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaction(signals[i], &sa, NULL);
#endif
}

/* How many processes a launcher started together with this one: Open MPI's mpirun
 * sets OMPI_COMM_WORLD_SIZE, MPICH's and Slurm's launchers PMI_SIZE. 1 when none. */
static long launched_processes(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        char *end;
        long n = v ? strtol(v, &end, 10) : 0;
        if (v && *v && !*end && n > 1) return n;
    }
    return 1;
}

#ifdef KD_HAVE_MPI
/* KDTRAIN_MPI_TIMEOUT: seconds a collective waits for the slowest rank (default 300:
 * longer than rank 0 takes to write the largest checkpoint). */
static int collective_timeout(double *seconds)
{
    const char *v = getenv("KDTRAIN_MPI_TIMEOUT");
    *seconds = 300;
    if (!v || !*v) return 0;
    char *end;
    double s = strtod(v, &end);
    if (*end || !(s > 0 && s <= 1e6)) {
        fprintf(stderr, "kdtrain: KDTRAIN_MPI_TIMEOUT: expected seconds in (0, 1e6], found '%s'\n", v);
        return 2;
    }
    *seconds = s;
    return 0;
}

/* What a rank says when the launcher ends the job (a rank died: Open MPI's mpirun
 * then sends SIGTERM to the others). Formatted before any work starts: the handler
 * only writes it. */
static char stop_message[256];

static void on_stop(int sig)
{
    (void)sig;
    ssize_t written = write(STDERR_FILENO, stop_message, strlen(stop_message));
    (void)written;
    _exit(1);
}
#endif

/* train, distill, sweep and run: one process, or one job over the ranks of an MPI
 * launcher when this kdtrain has MPI. */
static int run_job(const kd_command *command, int argc, char **argv)
{
    long processes = launched_processes();
    if (processes <= 1) return command->run_job(argc - 1, argv + 1, NULL);
#ifdef KD_HAVE_MPI
    double timeout;
    if (collective_timeout(&timeout)) return 2;
    kd_comm comm;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_mpi_open(&comm, &argc, &argv, timeout, &err);
    if (rc) {
        fprintf(stderr, "kdtrain %s: %s\n", argv[1], err.message);
        kd_mpi_close(&comm, 1);
        return 1;
    }
    if (comm.size != processes) {
        /* MPI started this process alone (a launcher of another MPI, say): N copies
         * would each train the same runs into the same folders */
        fprintf(stderr,
                "kdtrain %s: started as one of %ld processes by a launcher, but MPI sees a job of %d; start kdtrain "
                "with the mpirun of the MPI it was built with (Open MPI)\n",
                argv[1], processes, comm.size);
        kd_mpi_close(&comm, 0);
        return 2;
    }
    bool pipeline = strcmp(argv[1], "run") == 0 || strcmp(argv[1], "sweep") == 0;
    snprintf(stop_message, sizeof stop_message,
             "kdtrain %s (rank %d of %d): stopped by the launcher (a rank died or failed, or the job was "
             "interrupted); files are replaced by rename, so the last checkpoints are whole: %s\n",
             argv[1], comm.rank, comm.size,
             pipeline ? "start the same command again to reuse finished runs and resume the others"
                      : "continue with --resume RUN");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    rc = command->run_job(argc - 1, argv + 1, &comm);
    /* Done: a rank that exits first (with an error) makes the launcher end the others,
     * which have nothing left to say then. */
    signal(SIGTERM, SIG_DFL);
    kd_mpi_close(&comm, rc);
    return rc;
#else
    fprintf(stderr,
            "kdtrain %s: started as one of %ld processes by an MPI launcher, but this kdtrain is built without "
            "MPI, so each process would train the same runs into the same folders; run it as one process, or "
            "build kdtrain with MPI (libopenmpi-dev)\n",
            argv[1], processes);
    return 2;
#endif
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "kdtrain %s - knowledge distillation and calibration trainer\n\n"
            "usage: kdtrain [--help] [--version] COMMAND [ARGS]\n\ncommands:\n",
            KD_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'kdtrain COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    catch_faults();
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("kdtrain %s\n", KD_VERSION_STRING);
        return 0;
    }
    const kd_command *command = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) command = &commands[i];
    if (command && command->run) {
        /* N copies of a one-process command would race for the same files; info only reads */
        long processes = launched_processes();
        if (processes > 1 && strcmp(argv[1], "info") != 0) {
            fprintf(stderr,
                    "kdtrain %s: started as one of %ld processes by an MPI launcher, but %s runs as one process "
                    "(train, distill, sweep and run run as one job over the ranks)\n",
                    argv[1], processes, argv[1]);
            return 2;
        }
        return command->run(argc - 1, argv + 1);
    }
    if (command) return run_job(command, argc, argv);
    fprintf(stderr, "kdtrain: unknown command '%s'; 'kdtrain --help' lists the commands\n", argv[1]);
    return 2;
}
