/*
 * tests/model/lock.pml: the update-lock protocol of firmware/src/lock.rs,
 * as SPIN (Promela) checks it. tests/model/run checks it; docs/model.md says
 * what is proved, under which assumptions, and what is not.
 *
 * One lock name in one directory. Its state is the directory entry (which
 * inode the name points at), each inode's kind, tag and flock holder, and
 * each process's descriptors. Every statement that changes or reads shared
 * state is one syscall of the real code, in the code's order, each in an
 * atomic block of its own (a syscall is atomic; nothing between two is).
 * Beside each one a comment  @lock.rs:LINE fn "text"  names the line it
 * mirrors; tests/model/refs checks that LINE of firmware/src/lock.rs lies in
 * fn and contains text, so a change to the code fails CI until the model is
 * changed with it.
 *
 * Processes: NUPD updlocks, each taking with Wait::Forever, holding, and
 * releasing, and killed (SIGKILL) at any step up to CRASHES times in all,
 * after which it is restarted or, if it is the last kill, may stay dead;
 * the supervisor, which takes its own lock with `lockfile -r 0` or backs
 * off, and with FORCE overrides once: unlinks the user's file, creates its
 * own; a foreign program that creates an untagged file and later removes
 * it. Inode numbers are never reused: every identity the code compares is
 * of an inode it holds open, which the kernel cannot free.
 *
 * Compile-time switches (tests/model/run passes them to spin -D):
 *   NUPD, CRASHES, FORCE, FOREIGN  the bounds above;
 *   STRICT_OTHERS      no excuse for release's documented window (expected
 *                      to fail: it shows the window);
 *   NO_RELEASE_CHECK   release unlinks without the inode check (must fail);
 *   NO_RETAKE_CHECK    retake skips the inode check after its flock (must fail);
 *   READONLY_FLOCK     the code before this model: flocks through read-only
 *                      descriptors (must fail progress).
 */

#ifndef NUPD
#define NUPD 2
#endif
#ifndef CRASHES
#define CRASHES 1
#endif
#ifndef FORCE
#define FORCE 1
#endif
#ifndef FOREIGN
#define FOREIGN 1
#endif

#define ROUNDS 2 /* MAX_ROUNDS, cut down: each round is one more look */
#define NME (NUPD * (CRASHES + 1) + 1) /* incarnations, 1-based */
#define NINO 8

#define K_UPD 1 /* created by an updlock */
#define K_SUP 2 /* uid 65534: the supervisor's */
#define K_FOR 3 /* anyone else's, untagged */

byte lockname;          /* the inode the lock name points at; 0: none */
byte tmpname[NME];      /* the inode at incarnation i's temporary name */
byte kind[NINO];
byte tag[NINO];         /* 0: empty or not updlock's; else the tagger */
byte flocker[NINO];     /* the incarnation holding its flock; 0: none */
bool orphan[NINO];      /* an empty temporary whose taker died (old enough) */
bool tnamed[NINO];      /* it has a temporary name */
bool overridden[NINO];  /* lost its name to an override */
byte gi;                /* scratch for gc() and the kill */

/* Each instance's descriptors (0: closed), global so that an inode nobody
 * names or holds open can be freed and its number reused: the kernel's
 * inode is gone then, and nothing the code keeps refers to it. The
 * blocker's id is kept too, though the code holds nothing open for it. */
byte tmp_[NUPD];        /* publish's temporary, open read-write */
byte rd_[NUPD];         /* observe's reader, read-only */
byte wr_[NUPD];         /* retake's writer */
byte fd_[NUPD];         /* the held lock */
byte sw_[NUPD];         /* the sweep's descriptor */
byte bino_[NUPD];       /* Blocker: the file in the way */
byte sup_;              /* the supervisor's file */
byte for_;              /* the foreign program's file */

byte inc[NUPD];         /* the incarnation now running in each slot */
bool holds[NUPD];       /* believes it holds the lock */
byte held[NUPD];        /* the inode it holds */
bool pend[NUPD];        /* inotify events queued for its wait */
bool inwin[NUPD];       /* between release's fstatat and its unlinkat */
bool window[NUPD];      /* an override landed in that window */
bool killme[NUPD];
byte kills;
byte done;              /* instances that took and released */
byte gone;              /* instances killed for good */

/* Something a waiter's inotify reports: the lock name created, removed,
 * or closed by a writer; a temporary closed by a writer. */
inline event() {
	pend[0] = 1;
	pend[1] = 1;
#if NUPD > 2
	pend[2] = 1;
#endif
}

#define refs(s, i) (tmp_[s] == i || rd_[s] == i || wr_[s] == i || fd_[s] == i || sw_[s] == i || bino_[s] == i)
#if NUPD > 2
#define referenced(i) (lockname == i || tnamed[i] || sup_ == i || for_ == i || refs(0, i) || refs(1, i) || refs(2, i))
#else
#define referenced(i) (lockname == i || tnamed[i] || sup_ == i || for_ == i || refs(0, i) || refs(1, i))
#endif

/* Frees every inode nobody names or holds open (inside an atomic). */
inline gc() {
	gi = 1;
	do
	:: gi < NINO ->
		if
		:: kind[gi] != 0 && !referenced(gi) ->
			kind[gi] = 0; tag[gi] = 0; flocker[gi] = 0; orphan[gi] = 0; overridden[gi] = 0
		:: else
		fi;
		gi++
	:: else -> gi = 0; break
	od
}

/* A new inode: the lowest free number (inside an atomic). */
inline new_inode(k, ino) {
	gi = 1;
	do
	:: gi < NINO && kind[gi] != 0 -> gi++
	:: else -> break
	od;
	assert(gi < NINO);
	ino = gi;
	gi = 0;
	kind[ino] = k
}

/* A file lost its name to someone other than its owner: the supervisor's
 * force, or an updlock whose release window that force hit (which may hit
 * another release window in turn). Every updlock inside its own window
 * now has it hit. */
inline override_hits(ino) {
	overridden[ino] = 1;
	window[0] = window[0] || inwin[0];
	window[1] = window[1] || inwin[1];
#if NUPD > 2
	window[2] = window[2] || inwin[2];
#endif
}

/* Mutual exclusion and consistency, checked in every state. */
#define believes(s) (holds[s] && !overridden[held[s]])
#define consistent(s) (!believes(s) || (lockname == held[s] && flocker[held[s]] == inc[s]))
#if NUPD > 2
#define mutex (!(believes(0) && believes(1)) && !(believes(0) && believes(2)) && !(believes(1) && believes(2)))
#define allconsistent (consistent(0) && consistent(1) && consistent(2))
#else
#define mutex (!(believes(0) && believes(1)))
#define allconsistent (consistent(0) && consistent(1))
#endif

active proctype invariants() {
end_watching:
	atomic { !(mutex && allconsistent) -> assert(mutex && allconsistent) }
}

#define TMP tmp_[s]
#define RD rd_[s]
#define WR wr_[s]
#define FD fd_[s]
#define SW sw_[s]
#define BINO bino_[s]

#ifdef READONLY_FLOCK
#define SWEEP_CLOSED skip /* read-only: no event */
#else
#define SWEEP_CLOSED event() /* read-write: IN_CLOSE_WRITE on a temporary */
#endif

proctype updlock(byte s) {
	byte me, gen, r, o, j;
	bool btag, linked, ours;

restart:
	me = s + 1 + NUPD * gen;
	inc[s] = me;
	pend[s] = 0;
	{
	/* LockSet::take_waiting: the watch starts; every later watch is the
	 * same one, its queue kept. */
	skip; /* @lock.rs:965 take_waiting "events.watch(&targets)" */
retry:
	/* LockFile::take, which first sweeps temporaries. Open, fstat and
	 * read the tag are one step: only the open touches the directory, and
	 * a tag written meanwhile is seen before or after it. */
	j = 0;
	do
	:: atomic {
		/* On to the next temporary name there is: opening one that is
		 * not there does nothing, so those are passed over in one step. */
		j++;
		do
		:: j < NME && tmpname[j] == 0 -> j++
		:: else -> break
		od
	   }
		if
		:: j == NME -> j = 0; break
		:: else
		fi;
		atomic { SW = tmpname[j] } /* @lock.rs:824 sweep_temporaries "let open = " */
		if
		:: SW != 0 && (tag[SW] != 0 || orphan[SW]) -> /* @lock.rs:851 sweep_temporaries "Tag::parse(&head)" */
			atomic { /* @lock.rs:855 sweep_temporaries "flock(file.as_raw_fd()" */
				if
				:: flocker[SW] == 0 -> flocker[SW] = me
				:: else -> SW = 0; SWEEP_CLOSED; gc()
				fi
			}
			if
			:: SW != 0 ->
				atomic { /* @lock.rs:858 sweep_temporaries "fstatat(target.fd()" */
					if
					:: tmpname[j] == SW -> skip
					:: else -> flocker[SW] = 0; SW = 0; SWEEP_CLOSED; gc()
					fi
				}
				if
				:: SW != 0 ->
					atomic { /* @lock.rs:862 sweep_temporaries "unlinkat(" */
						assert(kind[SW] == K_UPD);
						tmpname[j] = 0;
						tnamed[SW] = 0
					}
					atomic { flocker[SW] = 0; SW = 0; SWEEP_CLOSED; gc() }
				:: else
				fi
			:: else
			fi
		:: else -> atomic { if :: SW != 0 -> SW = 0; SWEEP_CLOSED; gc() :: else fi }
		fi
	od;

	r = 0;
round:
	if
	:: r == ROUNDS -> r = 0; goto blocked /* Holder::Contended */
	:: else -> r++
	fi;
	/* publish */
	atomic { /* @lock.rs:704 publish "match openat(" */
		new_inode(K_UPD, TMP);
		tmpname[me] = TMP;
		tnamed[TMP] = 1
	}
	atomic { assert(flocker[TMP] == 0); flocker[TMP] = me } /* @lock.rs:717 publish "flock(file.as_raw_fd()" */
	tag[TMP] = me; /* @lock.rs:719 publish "file.write_all(" */
	atomic { /* @lock.rs:723 publish "match linkat(" */
		if
		:: lockname == 0 -> lockname = TMP; linked = 1; event()
		:: else -> linked = 0
		fi
	}
	atomic { tmpname[me] = 0; tnamed[TMP] = 0 } /* @lock.rs:736 publish "unlinkat(Some(dir), temp" */
	if
	:: linked -> atomic { FD = TMP; TMP = 0; linked = 0; r = 0 }; goto got
	:: else -> atomic { flocker[TMP] = 0; TMP = 0; event(); gc() } /* dropped: writable */
	fi;

	/* observe: stat the name, open what is there read-only, fstat, read
	 * the tag (fstat and read are on the descriptor: one step).
	 * A name that changes between the stat and the open sends observe
	 * round its own loop (MAX_ROUNDS too), then back to take's. */
look:
	atomic { BINO = lockname } /* @lock.rs:350 observe "target.stat_name()" */
	if
	:: BINO == 0 -> o = 0; goto round /* Observed::Free */
	:: else
	fi;
	atomic { RD = lockname } /* @lock.rs:376 observe "openat(target.fd()" */
	if
	:: RD != BINO -> /* ENOENT, or the fstat after the open differs: continue */
		atomic { RD = 0; BINO = 0; gc() };
		if
		:: o < ROUNDS - 1 -> o++; goto look
		:: else -> o = 0; goto round /* Present { file: None } */
		fi
	:: else -> atomic { BINO = 0; o = 0 }
	fi;
	if
	:: kind[RD] == K_SUP -> atomic { RD = 0; r = 0; gc() }; goto blocked /* Holder::Supervisor */
	:: kind[RD] != K_SUP && tag[RD] == 0 -> atomic { RD = 0; r = 0; gc() }; goto blocked /* Holder::Foreign */
	:: else
	fi;

	/* retake */
#ifdef READONLY_FLOCK
	/* The code before this model: flock the reader, check the name, then
	 * move the flock to a writer. */
	atomic {
		if
		:: flocker[RD] == 0 -> flocker[RD] = me
		:: else -> RD = 0; r = 0; gc(); goto blocked
		fi
	}
#ifndef NO_RETAKE_CHECK
	if
	:: lockname != RD -> atomic { flocker[RD] = 0; RD = 0; gc() }; goto round
	:: else
	fi;
#endif
	atomic { WR = lockname }
	if
	:: WR != RD -> atomic { flocker[RD] = 0; RD = 0; if :: WR != 0 -> WR = 0; event() :: else fi; gc() }; goto round
	:: else
	fi;
	atomic { flocker[RD] = 0; RD = 0 } /* drop(reader): no event */
	atomic {
		if
		:: flocker[WR] == 0 -> flocker[WR] = me
		:: else -> WR = 0; event(); gc(); goto round
		fi
	}
	if
	:: lockname != WR -> atomic { flocker[WR] = 0; WR = 0; event(); gc() }; goto round
	:: else
	fi;
#else
	atomic { WR = lockname } /* @lock.rs:755 retake "openat(target.fd()" */
	if
	:: WR == 0 -> atomic { RD = 0; gc() }; goto round /* Err(_): the name went */
	:: WR != 0 && WR != RD -> atomic { WR = 0; RD = 0; event(); gc() }; goto round /* @lock.rs:758 retake "fstat(writer" */
	:: else -> RD = 0 /* @lock.rs:762 retake "drop(reader)" */
	fi;
	atomic { /* @lock.rs:778 retake "flock(holder.as_raw_fd()" */
		if
		:: flocker[WR] == 0 -> flocker[WR] = me
		:: else -> WR = 0; r = 0; event(); gc(); goto blocked /* Holder::Updlock */
		fi
	}
#ifndef NO_RETAKE_CHECK
	if /* @lock.rs:785 retake "target.names(id)" */
	:: lockname != WR -> atomic { flocker[WR] = 0; WR = 0; event(); gc() }; goto round
	:: else
	fi;
#endif
#endif
	tag[WR] = me; /* @lock.rs:791 retake "write_all_at(" */
	atomic { FD = WR; WR = 0; r = 0 };
	goto got;

blocked:
	/* Held: Blocker::at looks at the name (read-only: no event); each
	 * batch of events prompts still_there; gone or unflocked: try again. */
	atomic { /* @lock.rs:977 take_waiting "Blocker::at(&path)" */
		BINO = lockname;
		btag = (BINO != 0 && kind[BINO] == K_UPD && tag[BINO] != 0)
	}
	do
	:: atomic { pend[s] -> pend[s] = 0 } /* @lock.rs:979 take_waiting "events.next(deadline)" */
		if /* @lock.rs:990 take_waiting "blocker.still_there()" */
		:: atomic { lockname == BINO && BINO != 0 && (!btag || flocker[BINO] != 0) -> skip }
		:: atomic { else -> BINO = 0; btag = 0; gc() }; goto retry
		fi
	od;

got:
	atomic {
		holds[s] = 1;
		held[s] = FD
	}
	/* The section: the override watch looks at the name any number of times. */
	do
	:: atomic { lockname != FD -> skip } /* @lock.rs:1009 lost "f.ownership()" */
		break
	:: break
	od;
	atomic { holds[s] = 0; held[s] = 0 } /* the line is safe: release starts */

	/* release_inner */
	atomic { /* @lock.rs:526 release_inner "self.ownership()" */
#ifdef NO_RELEASE_CHECK
		ours = 1;
#else
		ours = (lockname == FD);
#endif
		inwin[s] = ours
	}
	if
	:: ours ->
		atomic { /* @lock.rs:528 release_inner "unlinkat(" */
#ifdef STRICT_OTHERS
			assert(lockname == 0 || lockname == FD);
#else
			/* Never anyone else's file, except when an override landed
			 * between the fstatat and this unlinkat: the window lock.rs's
			 * header owns up to. */
			assert(lockname == 0 || lockname == FD || window[s]);
#endif
			if
			:: lockname != 0 && lockname != FD -> override_hits(lockname)
			:: else
			fi;
			if
			:: lockname != 0 -> lockname = 0; event()
			:: else /* ENOENT: already gone */
			fi;
			inwin[s] = 0;
			window[s] = 0;
			ours = 0;
			gc()
		}
	:: else
	fi;
	atomic { flocker[FD] = 0; FD = 0; event(); gc() } /* @lock.rs:547 release_inner "drop(file)" */
	done++
	} unless {
		atomic {
			killme[s] ->
			/* SIGKILL: every descriptor closes, every flock goes; names
			 * stay. Every flock is on a writable descriptor: waiters hear. */
			gi = 1;
			do
			:: gi < NINO ->
				if
				:: flocker[gi] == me -> flocker[gi] = 0
				:: else
				fi;
				gi++
			:: else -> gi = 0; break
			od;
			if
			:: TMP != 0 && tag[TMP] == 0 -> orphan[TMP] = 1
			:: else
			fi;
#ifdef READONLY_FLOCK
			if
			:: TMP != 0 || WR != 0 || FD != 0 -> event()
			:: else
			fi;
#else
			if
			:: TMP != 0 || WR != 0 || FD != 0 || SW != 0 -> event()
			:: else
			fi;
#endif
			holds[s] = 0; held[s] = 0;
			inwin[s] = 0;
			window[s] = 0;
			killme[s] = 0;
			TMP = 0; RD = 0; WR = 0; FD = 0; SW = 0; BINO = 0;
			j = 0; r = 0; o = 0; btag = 0; linked = 0; ours = 0;
			gc();
			gen++
		}
		if
		:: goto restart
		:: kills == CRASHES -> gone++ /* the last kill may be for good */
		fi
	}
}

proctype killer() {
	do
	:: kills < CRASHES ->
		atomic {
			if
			:: killme[0] = 1
			:: killme[1] = 1
#if NUPD > 2
			:: killme[2] = 1
#endif
			fi;
			kills++
		}
	:: break
	od
}

/* The supervisor: `lockfile -r 0` as uid 65534 (O_EXCL), or exit 73 and
 * back off; with FORCE, once: unlink the user's file, then create its own.
 * Its own file goes when the update is done. */
proctype supervisor() {
	byte tries;
	do
	:: tries < 2 ->
		tries++;
		if
		:: atomic { lockname == 0 -> new_inode(K_SUP, sup_); lockname = sup_; event() }
			atomic { if :: lockname == sup_ -> lockname = 0; event() :: else fi; sup_ = 0; gc() }
		:: atomic { lockname != 0 -> skip } /* Lockfile exists: retry later */
#if FORCE
		:: atomic { lockname != 0 && kind[lockname] != K_SUP ->
				override_hits(lockname); lockname = 0; event(); gc() }
			atomic {
				if
				:: lockname == 0 -> new_inode(K_SUP, sup_); lockname = sup_; event()
				:: else /* someone got there: lockfile fails, rolls back */
				fi
			}
			atomic { if :: sup_ != 0 && lockname == sup_ -> lockname = 0; event() :: else fi; sup_ = 0; gc() }
			tries = 2
#endif
		fi
	:: else -> break
	od
}

proctype foreign() {
	if
	:: atomic { lockname == 0 -> new_inode(K_FOR, for_); lockname = for_; event() }
		atomic { if :: lockname == for_ -> lockname = 0; event() :: else fi; for_ = 0; gc() }
	:: skip
	fi
}

init {
	atomic {
		run updlock(0);
		run updlock(1);
#if NUPD > 2
		run updlock(2);
#endif
		run killer();
		run supervisor();
#if FOREIGN
		run foreign();
#endif
	}
}

/* Progress: under weak fairness, every instance not killed for good takes
 * the lock and releases it. */
ltl progress { <> (done + gone == NUPD) }
