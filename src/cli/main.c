/* main.c - the kdtrain binary: parses the subcommand and dispatches through a table. */
#define _XOPEN_SOURCE 700 /* sigaltstack, SA_ONSTACK */
#include "cli/commands.h"
#include "kd_version.h"

#include <signal.h>
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
    int (*run)(int argc, char **argv);
    const char *summary;
} kd_command;

static const kd_command commands[] = {
    {"prepare", kd_cmd_prepare, "import a data set (fashion-mnist) into kdtrain's HDF5 schema"},
    {"train", kd_cmd_train, "train a model from a config"},
    {"distill", kd_cmd_distill, "train a student by distillation from a teacher"},
    {"calibrate", kd_cmd_calibrate, "calibrate a kdtrain model (one exact T), or any model's logits with every calibrator; reports"},
    {"eval", kd_cmd_eval, "evaluate a model: accuracy, NLL, ECE, confusion matrix (JSON)"},
    {"run", kd_cmd_run, "run a whole experiment: teacher, students alone and distilled, over seeds"},
    {"sweep", kd_cmd_sweep, "the overfitting diagnostic: the fitted temperature against epoch, width, regularisation"},
    {"gaussian", kd_cmd_gaussian, "Gaussian clusters: the learned temperature against the Bayes-optimal 1/(2 sigma^2)"},
    {"export", kd_cmd_export, "write a model as a standard ONNX file (optionally with its temperature folded in)"},
    {"info", kd_cmd_info, "what a data set, checkpoint or logits file holds; without one, versions and the CPU"},
};

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
    /* This kdtrain has no MPI: N copies of a command would each train the same runs and
     * race for the same folders. Refused before anything is read or written. */
    long processes = launched_processes();
    if (processes > 1 && strcmp(argv[1], "info") != 0) {
        fprintf(stderr,
                "kdtrain %s: started as one of %ld processes by an MPI launcher, but this kdtrain is built without "
                "MPI, so each process would train the same runs into the same folders; run it as one process\n",
                argv[1], processes);
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kdtrain: unknown command '%s'; 'kdtrain --help' lists the commands\n", argv[1]);
    return 2;
}
