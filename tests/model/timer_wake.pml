/* The real clock's timer thread (include/stockade/detail/timer_thread.hpp) as a Promela model:
 * can a timer be armed while the worker goes to sleep, and be left due with nobody to fire it?
 * Checked by tests/model/run_spin.cmake (CTest: model.timer_wake, model.timer_wake.no_recheck_fails).
 *
 * ARMERS processes each arm one timer, on a shard of their own (the header's shards; one timer
 * per shard is enough to race), due at a time chosen by SPIN from 0..MAXT (so some are already
 * past), then may cancel it. Time moves from 0 to MAXT in steps that interleave with everything.
 * A shard's locked sections are atomic blocks (the lock makes them so; the worker's fire pass
 * takes the same lock). Outside the locks, only the two atomics the header reads without a lock
 * are shared: each shard's `earliest` and the worker's `wakes_at`, both seq_cst, so SPIN's
 * interleavings are the executions C++ allows for them. The worker's mutex and condition
 * variable are modelled as they behave: a notify with nobody waiting is lost.
 * Checked: when every armer is done and time has reached MAXT, no timer is still armed (a
 * lost wake-up leaves init blocked: an invalid end state); and under weak fairness that
 * moment comes. -DNO_RECHECK drops the worker's second look at the shards after publishing
 * when it will wake; the safety search must then find a lost timer. */

#ifndef ARMERS
#define ARMERS 2
#endif
#ifndef MAXT
#define MAXT 2
#endif
#define NEVER 255
#define AWAKE 254   /* wakes_at while the worker runs: below no due time, above none */

byte now = 0;
byte due[ARMERS];
bool linked[ARMERS];
byte earliest[ARMERS];      /* shard.earliest: NEVER when its list is empty */
byte wakes_at = NEVER;      /* NEVER before the worker waits; AWAKE while it runs */
bool wlock = false;         /* the worker's mutex */
bool waiting = false;       /* the worker is inside wakeup_.wait */
bool notified = false;
byte armers_done = 0;
bool checked = false;

/* wakes_at compares below a due time: AWAKE counts as "not sleeping", so no arm wakes it. */
#define SLEEPS_PAST(d) (wakes_at != AWAKE && d < wakes_at)

proctype armer(byte i) {
  byte d;
  if
  :: d = 0
  :: d = 1
  :: d = MAXT
  fi;
  atomic { due[i] = d; linked[i] = true; earliest[i] = d }   /* arm, under the shard lock */
  if
  :: SLEEPS_PAST(d) ->
    atomic { !wlock -> wlock = true };                       /* wake_for */
    if
    :: SLEEPS_PAST(d) ->
      wakes_at = d;
      if
      :: waiting -> notified = true
      :: else -> skip                                       /* nobody waits: lost, as a cv's */
      fi
    :: else -> skip
    fi;
    wlock = false
  :: else -> skip
  fi;
  if
  :: atomic { linked[i] -> linked[i] = false }               /* cancel (earliest left stale) */
  :: skip
  fi;
  armers_done++
}

proctype worker() {
  byte i, next, again;
pass:
  next = NEVER;
  i = 0;
  do
  :: i < ARMERS ->
    atomic {                                                 /* under the shard lock */
      if
      :: linked[i] && due[i] <= now -> linked[i] = false     /* fired */
      :: else -> skip
      fi;
      if
      :: linked[i] -> earliest[i] = due[i]
      :: else -> earliest[i] = NEVER
      fi;
      if
      :: earliest[i] < next -> next = earliest[i]
      :: else -> skip
      fi
    };
    i++
  :: else -> break
  od;
  atomic { !wlock -> wlock = true };
  wakes_at = next;
#ifndef NO_RECHECK
  again = NEVER;
  i = 0;
  do
  :: i < ARMERS ->
    if
    :: earliest[i] < again -> again = earliest[i]
    :: else -> skip
    fi;
    i++
  :: else -> break
  od;
  if
  :: again < next -> wakes_at = AWAKE; wlock = false; goto pass
  :: else -> skip
  fi;
#endif
  atomic { wlock = false; waiting = true };                  /* wait: releases the mutex */
end_sleep:
  atomic { (notified || (next != NEVER && now >= next)) -> notified = false; waiting = false };
  atomic { !wlock -> wlock = true };                         /* ...and takes it back */
  wakes_at = AWAKE;
  wlock = false;
  goto pass
}

proctype time() {
  do
  :: now < MAXT -> now++
  :: else -> break
  od
}

ltl every_timer_fires { <> checked }

init {
  byte i = 0;
  atomic {
    do
    :: i < ARMERS -> earliest[i] = NEVER; i++
    :: else -> break
    od;
    run worker();
    run time();
    i = 0;
    do
    :: i < ARMERS -> run armer(i); i++
    :: else -> break
    od
  }
  (armers_done == ARMERS && now == MAXT);
  /* Every timer is due by MAXT: once time is there, each must fire (or have been cancelled). */
  i = 0;
  do
  :: i < ARMERS -> (!linked[i]); i++
  :: else -> break
  od;
  checked = true
}
