/* counted_slot (include/stockade/detail/counted_slot.hpp) as a Promela model, checked by
 * tests/model/run_spin.cmake (CTest: model.counted_slot, model.counted_slot.old_protocol_fails).
 *
 * Each shared-variable statement below is one of the header's atomic operations (the slot's
 * are all seq_cst, so SPIN's interleavings are exactly the executions C++ allows for them;
 * refs is changed only by read-modify-writes, atomic whatever their order); steps on locals
 * are separate statements too, which only adds interleavings. The writer's spin-wait is a
 * blocking guard: "waits forever" shows as an invalid end state.
 * READERS readers each take ROUNDS references and drop them (defaults: 3 and 1;
 * tests/CMakeLists.txt also checks 2 readers x 2 rounds); one writer (writers are
 * serialised by the caller, so one process stands for all of them) does EXCHANGES exchanges,
 * the last one publishing null as resource's detach does, and drops each returned node.
 * Checked: a reader never counts a freed node; a node is never released below zero; at the
 * end every node is freed exactly once (no leak); no invalid end state (the writer's wait
 * cannot block for good); and, under weak fairness, the writer always finishes.
 * -DOLD_PROTOCOL models the protocol before the fix (no re-check of the phase), for which
 * assertion !freed[n] must fail. */

#ifndef READERS
#define READERS 3
#endif
#ifndef ROUNDS
#define ROUNDS 1
#endif
#ifndef EXCHANGES
#define EXCHANGES 3
#endif
#define NODES EXCHANGES
#define NIL 255

byte current = 0;     /* node 0 is in the slot from the start */
byte phase = 0;
byte readers[2];
byte refs[NODES];     /* node i's count: 1 (the creator's, then the slot's) until released */
bool freed[NODES];
bool writer_done = false;

/* Node::refs.fetch_sub(1) by whoever owns a reference; the last one frees the node. */
inline release(n) {
  atomic {
    assert(refs[n] > 0);
    refs[n]--;
    if
    :: refs[n] == 0 -> freed[n] = true
    :: else -> skip
    fi
  }
}

proctype reader() {
  byte p, q, n, round = 0;
  do
  :: round < ROUNDS ->
    p = phase;
#ifdef OLD_PROTOCOL
    readers[p % 2]++;
#else
again:
    readers[p % 2]++;           /* announce on the side the phase points to */
    q = phase;                  /* re-check: did a writer flip it meanwhile? */
    if
    :: q != p ->
      readers[p % 2]--;         /* withdraw, retry on the new side */
      p = q;
      goto again
    :: else -> skip
    fi;
#endif
    n = current;
    if
    :: n != NIL ->
      atomic {                  /* node->refs.fetch_add(1) */
        assert(!freed[n]);      /* THE property: never count a freed node */
        refs[n]++
      }
    :: else -> skip
    fi;
    readers[p % 2]--;           /* withdraw: acquire() returns n */
    if
    :: n != NIL -> release(n)   /* the caller's lease ends */
    :: else -> skip
    fi;
    round++
  :: else -> break
  od
}

proctype writer() {
  byte i = 1, old, p;
  do
  :: i <= EXCHANGES ->
    atomic {                    /* current_.exchange(next) */
      old = current;
      if
      :: i < EXCHANGES -> current = i
      :: else -> current = NIL
      fi
    }
    atomic { p = phase; phase++ }   /* phase_.fetch_add(1) */
    (readers[p % 2] == 0);      /* the wait: blocks until the old side reads zero */
    if
    :: old != NIL -> release(old)   /* the caller drops the slot's reference */
    :: else -> skip
    fi;
    i++
  :: else -> break
  od;
  writer_done = true
}

ltl writer_finishes { <> writer_done }

init {
  byte i = 0;
  atomic {
    do
    :: i < NODES -> refs[i] = 1; i++
    :: else -> break
    od;
    run writer();
    i = 0;
    do
    :: i < READERS -> run reader(); i++
    :: else -> break
    od
  }
  (_nr_pr == 1);                /* every reader and the writer ended */
  i = 0;
  do
  :: i < NODES -> assert(refs[i] == 0 && freed[i]); i++
  :: else -> break
  od
}
