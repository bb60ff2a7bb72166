//! Parse arbitrary text as a Dockerfile. Properties: never panics; the
//! syntax tree prints back the input byte for byte and its pieces tile the
//! input; every diagnostic points inside the input and quotes it; every
//! instruction span lies inside the input; linting never panics; an
//! ONBUILD trigger's stored expression parses again to the same trigger.
#![no_main]

use kiln_dockerfile_parser::{
    Dockerfile, InstructionKind, LintOptions, SyntaxTree, lint, parse_instruction,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let tree = SyntaxTree::parse(src);
    assert_eq!(tree.print(), src);
    let mut at = 0;
    for p in &tree.pieces {
        assert_eq!(p.span.start, at, "pieces must tile the input");
        assert!(p.span.end > p.span.start);
        at = p.span.end;
    }
    assert_eq!(at, src.len());

    let (df, errors) = Dockerfile::parse_partial(src);
    for d in &errors {
        assert!(d.span.start <= d.span.end && d.span.end <= src.len());
        assert_eq!(d.text, d.span.text(src));
        assert!(d.start.line >= 1 && d.start.column >= 1 && d.start <= d.end);
    }
    for i in &df.instructions {
        assert!(i.span.end <= src.len() && i.keyword_span.end <= src.len());
        assert!(i.start_line <= i.end_line);
        if let InstructionKind::Onbuild(o) = &i.kind
            && let Ok(again) = parse_instruction(&o.expression, df.escape())
        {
            // Spans differ (another source text); the content must not.
            assert_eq!(
                again.original, o.trigger.original,
                "ONBUILD expression must round-trip"
            );
            assert_eq!(again.name(), o.trigger.name());
            let flags = |i: &kiln_dockerfile_parser::Instruction| -> Vec<(String, Option<String>)> {
                i.flags
                    .iter()
                    .map(|f| (f.name.clone(), f.value.clone()))
                    .collect()
            };
            assert_eq!(flags(&again), flags(&o.trigger));
        }
    }
    let _ = lint(&df, &LintOptions::default());
    // `parse` agrees with `parse_partial`.
    assert_eq!(Dockerfile::parse(src).is_ok(), errors.is_empty());
});
