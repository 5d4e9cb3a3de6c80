/* commands.h - the subcommands of the kdtrain binary, one file each. A command
 * returns the process exit code: 0 success, 1 a runtime failure, 2 bad usage. */
#ifndef KD_CLI_COMMANDS_H
#define KD_CLI_COMMANDS_H

int kd_cmd_info(int argc, char **argv);
int kd_cmd_prepare(int argc, char **argv);
int kd_cmd_train(int argc, char **argv);
int kd_cmd_distill(int argc, char **argv);
int kd_cmd_eval(int argc, char **argv);
int kd_cmd_run(int argc, char **argv);
int kd_cmd_calibrate(int argc, char **argv);
int kd_cmd_sweep(int argc, char **argv);
int kd_cmd_gaussian(int argc, char **argv);
int kd_cmd_export(int argc, char **argv);

#endif
