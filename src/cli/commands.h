/* commands.h - the subcommands of the kdtrain binary, one file each. A command
 * returns the process exit code: 0 success, 1 a runtime failure, 2 bad usage. */
#ifndef KD_CLI_COMMANDS_H
#define KD_CLI_COMMANDS_H

#include "core/comm.h"

int kd_cmd_info(int argc, char **argv);
int kd_cmd_prepare(int argc, char **argv);
/* The commands that run as one job over the ranks of mpirun (comm: NULL for one process). */
int kd_cmd_train(int argc, char **argv, kd_comm *comm);
int kd_cmd_distill(int argc, char **argv, kd_comm *comm);
int kd_cmd_run(int argc, char **argv, kd_comm *comm);
int kd_cmd_sweep(int argc, char **argv, kd_comm *comm);
/* A parallel job's error on stderr: each rank its own, rank 0 also another rank's;
 * a message every rank reached alike once (rank 0's). */
void kd_cli_report_error(const char *command, const kd_comm *comm, const kd_error *err);
int kd_cmd_eval(int argc, char **argv);
int kd_cmd_calibrate(int argc, char **argv);
int kd_cmd_gaussian(int argc, char **argv);
int kd_cmd_export(int argc, char **argv);

#endif
