/* main.c - the kdtrain binary: parses the subcommand and dispatches through a table. */
#include "cli/commands.h"
#include "kd_version.h"

#include <stdio.h>
#include <string.h>

typedef struct kd_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} kd_command;

static const kd_command commands[] = {
    {"prepare", kd_cmd_prepare, "import a data set (fashion-mnist) into kdtrain's HDF5 schema"},
    {"train", kd_cmd_train, "train a model from a config"},
    {"distill", kd_cmd_distill, "train a student by distillation from a teacher"},
    {"calibrate", kd_cmd_calibrate, "fit one temperature exactly; calibration report with reliability diagrams"},
    {"eval", kd_cmd_eval, "evaluate a model: accuracy, NLL, ECE, confusion matrix (JSON)"},
    {"run", kd_cmd_run, "run a whole experiment: teacher, students alone and distilled, over seeds"},
    {"sweep", kd_cmd_sweep, "the overfitting diagnostic: the fitted temperature against epoch, width, regularisation"},
    {"gaussian", kd_cmd_gaussian, "Gaussian clusters: the learned temperature against the Bayes-optimal 1/(2 sigma^2)"},
    {"info", kd_cmd_info, "what a data set, checkpoint or logits file holds; without one, versions and the CPU"},
};

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
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kdtrain: unknown command '%s'; 'kdtrain --help' lists the commands\n", argv[1]);
    return 2;
}
