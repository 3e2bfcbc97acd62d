;; echo: answers every message with an `inform` whose content is the whole
;; message received. Receiver, conversation and in_reply_to are left out, so the
;; host fills them from the message being handled (docs/agent-abi.md).
(module
  (import "caxton" "send_message" (func $send (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"performative\":\"inform\",\"content\":")

  ;; One message is in flight at a time: it lives at 4096 and the reply after it.
  (func (export "caxton_alloc") (param $len i32) (result i32)
    (local $pages i32)
    ;; bytes needed: 4096 + message + reply (prefix + message + 1)
    (local.set $pages
      (i32.shr_u
        (i32.add (i32.add (i32.const 4096) (i32.mul (local.get $len) (i32.const 2))) (i32.const 65600))
        (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 4096))

  (func (export "handle_message") (param $ptr i32) (param $len i32) (result i32)
    (local $out i32)
    (local.set $out (i32.add (local.get $ptr) (local.get $len)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 35))
    (memory.copy (i32.add (local.get $out) (i32.const 35)) (local.get $ptr) (local.get $len))
    (i32.store8 (i32.add (local.get $out) (i32.add (i32.const 35) (local.get $len))) (i32.const 125))
    (call $send (local.get $out) (i32.add (local.get $len) (i32.const 36)))))
