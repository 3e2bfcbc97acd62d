;; ballast: every message grows its memory by 64 pages (4 MiB) and writes to all of it, so the
;; node really holds it (resident). It never gives it back: Wasm memory does not shrink, which
;; is what `memory gc` deals with (a fresh instance). Answers each message with its page count.
(module
  (import "caxton" "send_message" (func $send (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"performative\":\"inform\",\"content\":{\"pages\":0000}}")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_message") (param i32 i32) (result i32)
    (local $old i32) (local $pages i32) (local $n i32) (local $at i32)
    (local.set $old (memory.grow (i32.const 64)))
    (if (i32.ne (local.get $old) (i32.const -1))
      (then (memory.fill (i32.mul (local.get $old) (i32.const 65536)) (i32.const 7)
                         (i32.const 4194304))))
    ;; write the page count into the reply's four places (leading spaces: JSON has no leading zeros)
    (local.set $pages (memory.size))
    (local.set $at (i32.const 47))
    (loop $digits
      (if (i32.and (i32.eqz (local.get $pages)) (i32.lt_u (local.get $at) (i32.const 47)))
        (then (i32.store8 (local.get $at) (i32.const 32)))
        (else (i32.store8 (local.get $at)
                          (i32.add (i32.const 48) (i32.rem_u (local.get $pages) (i32.const 10))))))
      (local.set $pages (i32.div_u (local.get $pages) (i32.const 10)))
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (br_if $digits (i32.ge_u (local.get $at) (i32.const 44))))
    (call $send (i32.const 0) (i32.const 50))))
