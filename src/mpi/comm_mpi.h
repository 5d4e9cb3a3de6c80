/* comm_mpi.h - core/comm.h over MPI (Open MPI from Debian), built only when CMake
 * finds MPI and linked only into the kdtrain program and the tests: libkd has no MPI
 * dependency. The collectives are MPI's nonblocking ones, polled against a deadline,
 * so a rank that died turns into an error naming the operation, not a hang; MPI's
 * error handler returns codes instead of aborting silently. */
#ifndef KD_COMM_MPI_H
#define KD_COMM_MPI_H

#include "core/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initialises MPI (thread level MPI_THREAD_SERIALIZED at least: the job queue's server
 * is a thread of rank 0) and fills comm for MPI_COMM_WORLD. timeout_seconds: how long
 * a collective waits (> 0). */
int kd_mpi_open(kd_comm *comm, int *argc, char ***argv, double timeout_seconds, kd_error *err);
/* Ends MPI: MPI_Finalize after a clean end or an agreed failure; MPI_Abort (every
 * rank of the job ends) after a failure only this rank knows of. Frees comm's state. */
void kd_mpi_close(kd_comm *comm, int status);

#ifdef __cplusplus
}
#endif
#endif
