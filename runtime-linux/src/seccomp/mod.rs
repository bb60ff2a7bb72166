//! Seccomp: Docker's default profile as data, and a compiler from an OCI
//! [`LinuxSeccomp`] to a classic BPF program that the kernel runs on every
//! system call (no libseccomp).
//!
//! The compiled program checks the architecture (only x86_64 system calls are
//! evaluated; anything else gets the default action), then compares the
//! system call number against each rule in turn. Rules with argument
//! conditions compare the 64-bit argument as two 32-bit halves, as
//! libseccomp does. Names the host architecture does not have (`chown32`,
//! `socketcall`, ...) are skipped, as runc does, so one profile serves all
//! architectures.

mod docker;
#[cfg(target_arch = "x86_64")]
mod syscalls_x86_64;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};

use crate::error::{Error, Result};

pub use docker::docker_default_seccomp;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGT_K: u16 = 0x05 | 0x20;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_AND_K: u16 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const BPF_RET_K: u16 = 0x06;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
#[cfg(test)]
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// Looks up the number of system call `name` on the host architecture.
pub fn syscall_number(name: &str) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        syscalls_x86_64::SYSCALLS
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| syscalls_x86_64::SYSCALLS[i].1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        None
    }
}

fn action_value(action: LinuxSeccompAction, errno: Option<u32>, what: &str) -> Result<u32> {
    match action {
        LinuxSeccompAction::ScmpActNotify => Err(Error::Seccomp {
            reason: format!(
                "{what}: SCMP_ACT_NOTIFY needs a listener, which this runtime does not provide"
            ),
        }),
        other => Ok(other.as_u32(errno)),
    }
}

/// A rule for one system call: its action and argument conditions.
type Rule = (u32, Vec<LinuxSeccompArg>);

/// Where a conditional jump goes, resolved once a rule's length is known.
#[derive(Clone, Copy)]
enum Target {
    /// The next instruction.
    Next,
    /// Skip this many instructions.
    Skip(u8),
    /// The end of the rule: its conditions do not hold.
    Fail,
}

struct Insn {
    code: u16,
    jt: Target,
    jf: Target,
    k: u32,
}

fn ld(k: u32) -> Insn {
    Insn {
        code: BPF_LD_W_ABS,
        jt: Target::Next,
        jf: Target::Next,
        k,
    }
}
fn jmp(code: u16, k: u32, jt: Target, jf: Target) -> Insn {
    Insn { code, jt, jf, k }
}

/// Instructions for one argument condition; falls through when it holds,
/// jumps to `Fail` when not.
fn condition(arg: &LinuxSeccompArg) -> Result<Vec<Insn>> {
    let index = arg.index();
    if index > 5 {
        return Err(Error::Seccomp {
            reason: format!("argument index {index} out of range 0..=5"),
        });
    }
    let lo_off = OFF_ARGS + 8 * index as u32;
    let hi_off = lo_off + 4;
    let v = arg.value();
    let (vh, vl) = ((v >> 32) as u32, v as u32);
    use LinuxSeccompOperator as Op;
    use Target::{Fail, Next, Skip};
    Ok(match arg.op() {
        Op::ScmpCmpEq => vec![
            ld(hi_off),
            jmp(BPF_JEQ_K, vh, Next, Fail),
            ld(lo_off),
            jmp(BPF_JEQ_K, vl, Next, Fail),
        ],
        Op::ScmpCmpNe => vec![
            ld(hi_off),
            jmp(BPF_JEQ_K, vh, Next, Skip(2)),
            ld(lo_off),
            jmp(BPF_JEQ_K, vl, Fail, Next),
        ],
        Op::ScmpCmpMaskedEq => {
            // libseccomp: value is the mask, value_two the expected result.
            let m = v;
            let want = arg.value_two().unwrap_or(0);
            vec![
                ld(hi_off),
                Insn {
                    code: BPF_AND_K,
                    jt: Next,
                    jf: Next,
                    k: (m >> 32) as u32,
                },
                jmp(BPF_JEQ_K, (want >> 32) as u32, Next, Fail),
                ld(lo_off),
                Insn {
                    code: BPF_AND_K,
                    jt: Next,
                    jf: Next,
                    k: m as u32,
                },
                jmp(BPF_JEQ_K, want as u32, Next, Fail),
            ]
        }
        op @ (Op::ScmpCmpGt | Op::ScmpCmpGe | Op::ScmpCmpLt | Op::ScmpCmpLe) => {
            // a > v  <=>  hi > vh || (hi == vh && lo > vl); LT/LE are the
            // negations of GE/GT.
            let (lo_code, negate) = match op {
                Op::ScmpCmpGt => (BPF_JGT_K, false),
                Op::ScmpCmpGe => (BPF_JGE_K, false),
                Op::ScmpCmpLt => (BPF_JGE_K, true),
                _ => (BPF_JGT_K, true),
            };
            if negate {
                vec![
                    ld(hi_off),
                    jmp(BPF_JGT_K, vh, Fail, Next),
                    jmp(BPF_JEQ_K, vh, Next, Skip(2)),
                    ld(lo_off),
                    jmp(lo_code, vl, Fail, Next),
                ]
            } else {
                vec![
                    ld(hi_off),
                    jmp(BPF_JGT_K, vh, Skip(3), Next),
                    jmp(BPF_JEQ_K, vh, Next, Fail),
                    ld(lo_off),
                    jmp(lo_code, vl, Next, Fail),
                ]
            }
        }
    })
}

fn resolve(insns: Vec<Insn>, out: &mut Vec<SockFilter>) -> Result<()> {
    let len = insns.len();
    for (pc, i) in insns.into_iter().enumerate() {
        let to = |t: Target| -> Result<u8> {
            let n = match t {
                Target::Next => 0,
                Target::Skip(n) => usize::from(n),
                Target::Fail => len - pc - 1,
            };
            u8::try_from(n).map_err(|_| Error::Seccomp {
                reason: "a rule is too long for a BPF jump".into(),
            })
        };
        out.push(SockFilter {
            code: i.code,
            jt: to(i.jt)?,
            jf: to(i.jf)?,
            k: i.k,
        });
    }
    Ok(())
}

/// Compiles an OCI seccomp profile into a BPF program for the host
/// architecture.
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Vec<SockFilter>> {
    let default = action_value(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction",
    )?;
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::Seccomp {
            reason: "seccomp filters are only compiled for x86_64 hosts".into(),
        });
    }

    // Group rules by system call number, keeping profile order within a
    // number (libseccomp gives argument-less rules precedence; profiles
    // such as Docker's never mix both for one name with different actions).
    let mut groups: Vec<(u32, Vec<Rule>)> = Vec::new();
    for rule in profile.syscalls().iter().flatten() {
        let action = action_value(rule.action(), rule.errno_ret(), &rule.names().join(","))?;
        let args = rule.args().clone().unwrap_or_default();
        for name in rule.names() {
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            match groups.iter_mut().find(|(n, _)| *n == nr) {
                Some((_, rules)) => rules.push((action, args.clone())),
                None => groups.push((nr, vec![(action, args.clone())])),
            }
        }
    }
    // Argument-less rules first: they decide for every argument value.
    for (_, rules) in &mut groups {
        rules.sort_by_key(|(_, args)| !args.is_empty());
    }

    let mut prog = vec![
        SockFilter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: OFF_ARCH,
        },
        SockFilter {
            code: BPF_JEQ_K,
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH_X86_64,
        },
        SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: default,
        },
        SockFilter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: OFF_NR,
        },
        SockFilter {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: default,
        },
    ];
    for (nr, rules) in groups {
        let mut body = Vec::new();
        for (action, args) in rules {
            let mut insns = Vec::new();
            for arg in &args {
                insns.extend(condition(arg)?);
            }
            insns.push(Insn {
                code: BPF_RET_K,
                jt: Target::Next,
                jf: Target::Next,
                k: action,
            });
            // `Fail` lands just after this rule's `ret`: the next rule.
            resolve(insns, &mut body)?;
            if args.is_empty() {
                break;
            }
        }
        // No rule matched: the number register was clobbered by argument
        // loads, so return the default action here rather than fall through.
        body.push(SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: default,
        });
        let skip = u8::try_from(body.len()).map_err(|_| Error::Seccomp {
            reason: format!("too many rules for system call {nr}"),
        })?;
        prog.push(SockFilter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: skip,
            k: nr,
        });
        prog.extend(body);
    }
    prog.push(SockFilter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: default,
    });
    if prog.len() > 4096 {
        return Err(Error::Seccomp {
            reason: format!(
                "{} BPF instructions exceed the kernel's limit of 4096",
                prog.len()
            ),
        });
    }
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

    /// A tiny classic-BPF interpreter for the instructions we emit.
    fn run(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend(nr.to_le_bytes());
        data.extend(arch.to_le_bytes());
        data.extend(0u64.to_le_bytes());
        for a in args {
            data.extend(a.to_le_bytes());
        }
        let word = |off: u32| {
            let o = off as usize;
            u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
        };
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => a = word(i.k),
                BPF_AND_K => a &= i.k,
                BPF_RET_K => return i.k,
                c => {
                    let hit = match c {
                        BPF_JEQ_K => a == i.k,
                        BPF_JGT_K => a > i.k,
                        BPF_JGE_K => a >= i.k,
                        _ => panic!("unexpected opcode {c:#x}"),
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
            }
        }
    }

    fn nr(name: &str) -> u32 {
        syscall_number(name).unwrap_or_else(|| panic!("{name} unknown"))
    }

    #[test]
    fn docker_profile_allows_and_denies() -> Result<()> {
        let prog = compile(&docker_default_seccomp(&[]))?;
        let eperm = 0x0005_0000 | 1;
        let x = AUDIT_ARCH_X86_64;
        assert_eq!(run(&prog, x, nr("read"), [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, x, nr("keyctl"), [0; 6]), eperm);
        assert_eq!(run(&prog, x, nr("mount"), [0; 6]), eperm);
        // clone without namespace flags is fine, with CLONE_NEWNS is not.
        assert_eq!(
            run(&prog, x, nr("clone"), [0x11, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&prog, x, nr("clone"), [0x0002_0000, 0, 0, 0, 0, 0]),
            eperm
        );
        // socket(AF_VSOCK) is denied, AF_INET allowed.
        assert_eq!(run(&prog, x, nr("socket"), [40, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(
            run(&prog, x, nr("socket"), [2, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&prog, x, nr("personality"), [8, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(run(&prog, x, nr("personality"), [1, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&prog, x, nr("clone3"), [0; 6]), 0x0005_0000 | 38);
        // x32 numbers and foreign architectures take the default action.
        assert_eq!(run(&prog, x, nr("read") | X32_SYSCALL_BIT, [0; 6]), eperm);
        assert_eq!(run(&prog, 0x4000_0003, 3, [0; 6]), eperm);
        Ok(())
    }

    #[test]
    fn sys_admin_unlocks_mount() -> Result<()> {
        use oci_spec::runtime::Capability;
        let prog = compile(&docker_default_seccomp(&[Capability::SysAdmin]))?;
        let x = AUDIT_ARCH_X86_64;
        assert_eq!(run(&prog, x, nr("mount"), [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(
            run(&prog, x, nr("clone"), [0x0002_0000, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        Ok(())
    }

    #[test]
    fn comparisons_use_all_64_bits() -> Result<()> {
        let mk = |op, value| -> Result<Vec<SockFilter>> {
            let arg = LinuxSeccompArgBuilder::default()
                .index(1usize)
                .value(value)
                .op(op)
                .build();
            let rule = LinuxSyscallBuilder::default()
                .names(vec!["write".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![arg.map_err(|e| Error::spec(e.to_string()))?])
                .build()
                .map_err(|e| Error::spec(e.to_string()))?;
            let p = LinuxSeccompBuilder::default()
                .default_action(LinuxSeccompAction::ScmpActErrno)
                .syscalls(vec![rule])
                .build()
                .map_err(|e| Error::spec(e.to_string()))?;
            compile(&p)
        };
        let x = AUDIT_ARCH_X86_64;
        let w = nr("write");
        let big = 0x1_0000_0005u64;
        for (op, value, yes, no) in [
            (
                LinuxSeccompOperator::ScmpCmpGt,
                0x1_0000_0000u64,
                big,
                0xffff_ffffu64,
            ),
            (LinuxSeccompOperator::ScmpCmpGe, big, big, big - 1),
            (LinuxSeccompOperator::ScmpCmpLt, big, 7, big),
            (LinuxSeccompOperator::ScmpCmpLe, big, big, big + 1),
            (LinuxSeccompOperator::ScmpCmpEq, big, big, 5),
            (LinuxSeccompOperator::ScmpCmpNe, big, 5, big),
        ] {
            let prog = mk(op, value)?;
            assert_eq!(
                run(&prog, x, w, [0, yes, 0, 0, 0, 0]),
                SECCOMP_RET_ALLOW,
                "{op:?} {yes:#x}"
            );
            assert_ne!(
                run(&prog, x, w, [0, no, 0, 0, 0, 0]),
                SECCOMP_RET_ALLOW,
                "{op:?} {no:#x}"
            );
        }
        Ok(())
    }
}
