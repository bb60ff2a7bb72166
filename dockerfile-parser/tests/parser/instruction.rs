//! Typed instructions: every instruction and flag of the issue, with the
//! parsed structure asserted.

use std::time::Duration;

use kiln_dockerfile_parser::instructions::*;
use kiln_dockerfile_parser::{Dockerfile, Error, Instruction, InstructionKind, parse_instruction};

fn one(line: &str) -> Instruction {
    parse_instruction(line, '\\').unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn err(src: &str) -> String {
    match Dockerfile::parse(src) {
        Ok(_) => panic!("{src:?} should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn from_with_platform_and_name() {
    let i = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build");
    let InstructionKind::From(f) = &i.kind else {
        panic!("{:?}", i.kind)
    };
    assert_eq!(f.image.text, "golang:1.22");
    assert_eq!(f.stage_name.as_deref(), Some("build"));
    assert_eq!(
        f.stage_name_word.as_ref().map(|w| w.text.as_str()),
        Some("Build")
    );
    assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(
        err("FROM a b"),
        "1:1: FROM requires either one or three arguments"
    );
    assert!(err("FROM a AS 1x").contains("invalid name for build stage: \"1x\""));
}

#[test]
fn run_shell_exec_and_every_mount_type() {
    let i = one(
        "RUN --mount=type=bind,source=/src,target=/app,from=build,rw \
         --mount=type=cache,target=/root/.cache,id=c,sharing=private,mode=0700,uid=1000,gid=1000,ro \
         --mount=type=tmpfs,target=/tmp,size=1g \
         --mount=type=secret,id=aws,target=/root/.aws/credentials,required=true \
         --mount=type=ssh,id=default,required \
         --network=none --security=insecure --device=/dev/fuse make all",
    );
    let InstructionKind::Run(r) = &i.kind else {
        panic!()
    };
    assert_eq!(r.command, CommandLine::Shell("make all".into()));
    assert_eq!(r.mounts.len(), 5);
    let b = &r.mounts[0];
    assert_eq!(
        (
            b.kind,
            b.source.as_deref(),
            b.target.as_deref(),
            b.from.as_deref(),
            b.read_only
        ),
        (
            MountType::Bind,
            Some("/src"),
            Some("/app"),
            Some("build"),
            false
        )
    );
    let c = &r.mounts[1];
    assert_eq!(
        (
            c.kind,
            c.id.as_deref(),
            c.sharing,
            c.mode,
            c.uid,
            c.gid,
            c.read_only
        ),
        (
            MountType::Cache,
            Some("c"),
            Some(CacheSharing::Private),
            Some(0o700),
            Some(1000),
            Some(1000),
            true
        )
    );
    assert_eq!(
        (r.mounts[2].kind, r.mounts[2].size),
        (MountType::Tmpfs, Some(1 << 30))
    );
    assert!(r.mounts[3].required && r.mounts[3].kind == MountType::Secret);
    assert!(r.mounts[4].required && r.mounts[4].kind == MountType::Ssh);
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security, Some(SecurityMode::Insecure));
    assert_eq!(r.devices, ["/dev/fuse"]);
    assert_eq!(i.flags.len(), 8);

    let i = one(r#"RUN ["sh", "-c", "echo \"hi\""]"#);
    let InstructionKind::Run(r) = &i.kind else {
        panic!()
    };
    assert_eq!(
        r.command,
        CommandLine::Exec(vec!["sh".into(), "-c".into(), "echo \"hi\"".into()])
    );
    // Not valid JSON: shell form, as BuildKit does.
    let i = one("RUN [ \"a\", ]");
    assert!(matches!(&i.kind, InstructionKind::Run(r) if r.command.is_shell()));
    assert!(err("FROM a\nRUN [1, 2]").contains("arrays must be comprised of strings only"));
    assert!(err("FROM a\nRUN --network=bridge x").contains("unsupported network mode \"bridge\""));
    assert!(err("FROM a\nRUN --mount=type=cache x").contains("requires a target"));
}

#[test]
fn heredocs_in_run_and_copy() {
    let src = "FROM a\nRUN <<EOF bash\nset -e\necho $HOME\nEOF\nCOPY --chmod=644 <<-\"CONF\" /etc/app.conf\n\tkey=$v\n\tCONF\n";
    let df = Dockerfile::parse(src).unwrap_or_else(|e| panic!("{e}"));
    let run = &df.instructions[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].name, "EOF");
    assert_eq!(run.heredocs[0].content, "set -e\necho $HOME\n");
    assert!(run.heredocs[0].expand);
    assert_eq!((run.start_line, run.end_line), (2, 5));
    let copy = &df.instructions[2];
    let InstructionKind::Copy(c) = &copy.kind else {
        panic!()
    };
    assert_eq!(c.sources, ["<<-\"CONF\""]);
    assert_eq!(c.dest, "/etc/app.conf");
    assert_eq!(c.chmod.as_deref(), Some("644"));
    let h = &copy.heredocs[0];
    assert!(!h.expand && h.chomp);
    assert_eq!(h.body(), "key=$v\n");
    assert!(
        err("FROM a\nCOPY x <<EOF\nEOF\n").contains("cannot accept a heredoc as a destination")
    );
    assert!(err("FROM a\nRUN <<EOF\nno end\n").contains("unterminated heredoc"));
    // JSON form cannot hold heredocs.
    let df = Dockerfile::parse("FROM a\nRUN [\"cat\", \"<<EOF\"]\nEOF\n");
    assert!(df.is_err(), "EOF is an unknown instruction here");
}

#[test]
fn copy_and_add_flags() {
    let i = one(
        "COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dst/",
    );
    let InstructionKind::Copy(c) = &i.kind else {
        panic!()
    };
    assert_eq!(c.sources, ["a", "b"]);
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link && c.parents && !c.json);
    assert_eq!(c.exclude, ["*.md", "tmp"]);
    let i = one(r#"COPY ["a file", "dir with space/"]"#);
    let InstructionKind::Copy(c) = &i.kind else {
        panic!()
    };
    assert!(c.json);
    assert_eq!(c.sources, ["a file"]);
    assert_eq!(c.dest, "dir with space/");

    let i = one(
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --link=false --chown=1 --chmod=600 --exclude=x https://e/x.tgz /x",
    );
    let InstructionKind::Add(a) = &i.kind else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert!(a.keep_git_dir && !a.link);
    assert_eq!(a.unpack, Some(false));
    assert_eq!(a.exclude, ["x"]);
    assert!(err("FROM a\nCOPY onlyone").contains("COPY requires at least two arguments"));
    let e = err("FROM a\nCOPY --form=x a b");
    assert_eq!(e, "2:6: unknown flag: form (did you mean from?)");
    assert!(err("FROM a\nCOPY --from a b").contains("missing a value on flag: from"));
    assert!(
        err("FROM a\nCOPY --link=maybe a b")
            .contains("expecting boolean value for flag link, not: maybe")
    );
    assert!(err("FROM a\nCOPY --from=a --from=b a b").contains("duplicate flag specified: from"));
}

#[test]
fn env_label_arg_forms() {
    let i = one(r#"ENV A=1 B="two words" C=three\ words"#);
    let InstructionKind::Env(e) = &i.kind else {
        panic!()
    };
    assert!(!e.legacy);
    let kv: Vec<(&str, &str)> = e
        .pairs
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        kv,
        [("A", "1"), ("B", "\"two words\""), ("C", "three\\ words")]
    );
    let i = one("ENV PATH /usr/local/bin:$PATH and more");
    let InstructionKind::Env(e) = &i.kind else {
        panic!()
    };
    assert!(e.legacy);
    assert_eq!(
        (e.pairs[0].key.as_str(), e.pairs[0].value.as_str()),
        ("PATH", "/usr/local/bin:$PATH and more")
    );
    let i = one(r#"LABEL a=b "com.example.x"="y z" c='d'"#);
    let InstructionKind::Label(l) = &i.kind else {
        panic!()
    };
    assert_eq!(l.pairs.len(), 3);
    assert_eq!(l.pairs[1].key, "\"com.example.x\"");
    let i = one("ARG A B=2 C=");
    let InstructionKind::Arg(a) = &i.kind else {
        panic!()
    };
    let decl: Vec<(&str, Option<&str>)> = a
        .args
        .iter()
        .map(|d| (d.name.as_str(), d.default.as_deref()))
        .collect();
    assert_eq!(decl, [("A", None), ("B", Some("2")), ("C", Some(""))]);
    assert!(err("FROM a\nENV A").contains("ENV must have two arguments"));
    assert!(err("FROM a\nENV A=1 B").contains("can't find = in \"B\""));
    assert!(err("FROM a\nARG =x").contains("ARG names can not be blank"));
}

#[test]
fn expose_volume_user_workdir_stopsignal_maintainer_shell() {
    let i = one("EXPOSE 80 443/tcp 53/udp 8000-8010 $PORT");
    let InstructionKind::Expose(e) = &i.kind else {
        panic!()
    };
    assert_eq!(
        e.ports.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
        ["80", "443/tcp", "53/udp", "8000-8010", "$PORT"]
    );
    assert!(i.kind.expands_variables() && i.kind.splits_words());
    let i = one("VOLUME /a /b");
    assert!(matches!(&i.kind, InstructionKind::Volume(v) if v.paths == ["/a", "/b"] && !v.json));
    let i = one(r#"VOLUME ["/data dir"]"#);
    assert!(matches!(&i.kind, InstructionKind::Volume(v) if v.paths == ["/data dir"] && v.json));
    let i = one("USER app:staff");
    let InstructionKind::User(u) = &i.kind else {
        panic!()
    };
    assert_eq!(u.user_and_group(), ("app", Some("staff")));
    assert!(
        matches!(&one("WORKDIR /srv/$APP").kind, InstructionKind::Workdir(w) if w.path == "/srv/$APP")
    );
    assert!(
        matches!(&one("STOPSIGNAL SIGQUIT").kind, InstructionKind::Stopsignal(s) if s.signal == "SIGQUIT")
    );
    assert!(
        matches!(&one("MAINTAINER Jane <j@x>").kind, InstructionKind::Maintainer(m) if m.name == "Jane <j@x>")
    );
    let i = one(r#"SHELL ["powershell", "-command"]"#);
    assert!(matches!(&i.kind, InstructionKind::Shell(s) if s.shell == ["powershell", "-command"]));
    assert!(
        err("FROM a\nSHELL /bin/bash -c")
            .contains("SHELL requires the arguments to be in JSON form")
    );
    assert!(err("FROM a\nVOLUME [\"\"]").contains("VOLUME specified can not be an empty string"));
    assert!(err("FROM a\nUSER").contains("USER requires exactly one argument"));
    assert!(!one("RUN x").kind.expands_variables());
}

#[test]
fn cmd_entrypoint_healthcheck() {
    assert!(
        matches!(&one("CMD [\"a\", \"b\"]").kind, InstructionKind::Cmd(c) if c.command.args() == ["a", "b"])
    );
    assert!(
        matches!(&one("ENTRYPOINT exec app").kind, InstructionKind::Entrypoint(c) if c.command.is_shell())
    );
    let i = one(
        "HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --start-interval=500ms --retries=3 CMD curl -f http://localhost/",
    );
    let InstructionKind::Healthcheck(HealthcheckInstruction::Cmd {
        command,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }) = &i.kind
    else {
        panic!("{:?}", i.kind)
    };
    assert_eq!(
        command,
        &CommandLine::Shell("curl -f http://localhost/".into())
    );
    assert_eq!(*interval, Some(Duration::from_secs(30)));
    assert_eq!(*timeout, Some(Duration::from_secs(3)));
    assert_eq!(*start_period, Some(Duration::from_secs(60)));
    assert_eq!(*start_interval, Some(Duration::from_millis(500)));
    assert_eq!(*retries, Some(3));
    let InstructionKind::Healthcheck(h) = &i.kind else {
        panic!()
    };
    assert_eq!(h.test(), ["CMD-SHELL", "curl -f http://localhost/"]);
    assert!(matches!(
        &one("HEALTHCHECK NONE").kind,
        InstructionKind::Healthcheck(HealthcheckInstruction::None)
    ));
    assert!(err("FROM a\nHEALTHCHECK NONE x").contains("HEALTHCHECK NONE takes no arguments"));
    assert!(err("FROM a\nHEALTHCHECK --interval=10 CMD x").contains("missing unit"));
    assert!(
        err("FROM a\nHEALTHCHECK --retries=-1 CMD x").contains("--retries cannot be negative (-1)")
    );
    assert!(err("FROM a\nHEALTHCHECK --interval=1us CMD x").contains("cannot be less than 1ms"));
    assert!(err("FROM a\nHEALTHCHECK CMD").contains("Missing command after HEALTHCHECK CMD"));
    assert!(
        err("FROM a\nHEALTHCHECK FOO x").contains("Unknown type \"FOO\" in HEALTHCHECK (try CMD)")
    );
}

#[test]
fn onbuild_wraps_and_rejects() {
    let i = one("ONBUILD COPY --from=x . /app");
    let InstructionKind::Onbuild(o) = &i.kind else {
        panic!()
    };
    assert_eq!(o.expression, "COPY --from=x . /app");
    assert!(matches!(&o.trigger.kind, InstructionKind::Copy(c) if c.from.as_deref() == Some("x")));
    // The stored expression parses again (base-image triggers).
    let again = parse_instruction(&o.expression, '\\').unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.kind, o.trigger.kind);
    assert!(err("FROM a\nONBUILD FROM b").contains("FROM isn't allowed as an ONBUILD trigger"));
    assert!(
        err("FROM a\nONBUILD MAINTAINER b")
            .contains("MAINTAINER isn't allowed as an ONBUILD trigger")
    );
    assert!(err("FROM a\nONBUILD ONBUILD RUN x").contains("Chaining ONBUILD"));
    let df = Dockerfile::parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let InstructionKind::Onbuild(o) = &df.instructions[1].kind else {
        panic!()
    };
    assert_eq!(o.expression, "RUN <<EOF\necho hi\nEOF");
}

#[test]
fn unknown_instruction_hint_and_location() {
    let e = Dockerfile::parse("FROM a\n  RUNN echo")
        .err()
        .unwrap_or_else(|| panic!("should fail"));
    let Error::Parse(d) = &e else { panic!("{e:?}") };
    assert_eq!((d.start.line, d.start.column), (2, 3));
    assert_eq!(d.text, "RUNN");
    assert_eq!(d.message, "unknown instruction: RUNN");
    assert_eq!(d.hint.as_deref(), Some("did you mean RUN?"));
    assert!(err("RUN x").contains("no build stage in current context"));
}

#[test]
fn keywords_are_case_insensitive_and_stages_group() {
    let df = Dockerfile::parse("arg V=1\nfrom a as one\nrun x\nFrom one\nCopy --from=one /a /b\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(df.global_args().len(), 1);
    let stages = df.stages();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name(), Some("one"));
    assert_eq!(stages[0].instructions.len(), 1);
    assert_eq!(stages[1].from.image.text, "one");
    assert_eq!(stages[1].instructions[0].name(), "COPY");
    assert_eq!(stages[1].instructions[0].keyword, "Copy");
}

#[test]
fn escape_directive_changes_continuation() {
    let src = "# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir c:\\ `\n  && echo done\n";
    let df = Dockerfile::parse(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(df.escape(), '`');
    assert!(
        matches!(&df.instructions[1].kind, InstructionKind::Run(r) if r.command == CommandLine::Shell("dir c:\\   && echo done".into()))
    );
}
