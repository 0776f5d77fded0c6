;; The f32x4 kernels of wasm_simd.ts, on the tfjs wasm backend's own memory (imported as env.memory).
;; Assembled by `npm run build:kernels` (wabt) into wasm_simd_bytes.ts; edit here, then rebuild.
;;
;; Every function takes byte pointers into that memory, then $nbytes = 16·⌊n/4⌋, then its f32 scalars (each
;; splat to all four lanes once, before the loop); its loop covers bytes [0, $nbytes) 16 at a time and the caller
;; finishes the last n mod 4 elements in JS. The float32 operations and their order are those of the tfjs op chains
;; the kernels replace (AdamW's results are the chain's bit for bit), so do not reassociate anything here.
;; Loads and stores say align=1: tensors in the backend's heap are only 4-byte aligned (a hint; any alignment works).
(module
  (import "env" "memory" (memory 1))

  ;; AdamW: m' = m·β1 + g·c1, v' = v·β2 + (g·g)·c2, θ' = θ − ((m'/bc1)/(√(v'/bc2) + ε) + θ·λ)·lr
  (func (export "adamw")
    (param $theta i32) (param $m i32) (param $v i32) (param $g i32)
    (param $theta_out i32) (param $m_out i32) (param $v_out i32) (param $nbytes i32)
    (param $b1 f32) (param $c1 f32) (param $b2 f32) (param $c2 f32) (param $bc1 f32) (param $bc2 f32)
    (param $eps f32) (param $wd f32) (param $lr f32)
    (local $p i32)
    (local $b1x4 v128) (local $c1x4 v128) (local $b2x4 v128) (local $c2x4 v128) (local $bc1x4 v128)
    (local $bc2x4 v128) (local $epsx4 v128) (local $wdx4 v128) (local $lrx4 v128)
    (local $g4 v128) (local $m4 v128) (local $v4 v128) (local $theta4 v128)
    (local.set $b1x4 (f32x4.splat (local.get $b1)))
    (local.set $c1x4 (f32x4.splat (local.get $c1)))
    (local.set $b2x4 (f32x4.splat (local.get $b2)))
    (local.set $c2x4 (f32x4.splat (local.get $c2)))
    (local.set $bc1x4 (f32x4.splat (local.get $bc1)))
    (local.set $bc2x4 (f32x4.splat (local.get $bc2)))
    (local.set $epsx4 (f32x4.splat (local.get $eps)))
    (local.set $wdx4 (f32x4.splat (local.get $wd)))
    (local.set $lrx4 (f32x4.splat (local.get $lr)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        (local.set $g4 (v128.load align=1 (i32.add (local.get $g) (local.get $p))))
        ;; m' = m·β1 + g·c1
        (local.set $m4
          (f32x4.add
            (f32x4.mul (v128.load align=1 (i32.add (local.get $m) (local.get $p))) (local.get $b1x4))
            (f32x4.mul (local.get $g4) (local.get $c1x4))))
        (v128.store align=1 (i32.add (local.get $m_out) (local.get $p)) (local.get $m4))
        ;; v' = v·β2 + (g·g)·c2
        (local.set $v4
          (f32x4.add
            (f32x4.mul (v128.load align=1 (i32.add (local.get $v) (local.get $p))) (local.get $b2x4))
            (f32x4.mul (f32x4.mul (local.get $g4) (local.get $g4)) (local.get $c2x4))))
        (v128.store align=1 (i32.add (local.get $v_out) (local.get $p)) (local.get $v4))
        ;; θ' = θ − ((m'/bc1)/(√(v'/bc2) + ε) + θ·λ)·lr
        (local.set $theta4 (v128.load align=1 (i32.add (local.get $theta) (local.get $p))))
        (v128.store align=1 (i32.add (local.get $theta_out) (local.get $p))
          (f32x4.sub
            (local.get $theta4)
            (f32x4.mul
              (f32x4.add
                (f32x4.div
                  (f32x4.div (local.get $m4) (local.get $bc1x4))
                  (f32x4.add (f32x4.sqrt (f32x4.div (local.get $v4) (local.get $bc2x4))) (local.get $epsx4)))
                (f32x4.mul (local.get $theta4) (local.get $wdx4)))
              (local.get $lrx4))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; SwiGLU forward with s = σ(h) given: y = (h·s)·u
  (func (export "swiglu")
    (param $h i32) (param $s i32) (param $u i32) (param $y i32) (param $nbytes i32)
    (local $p i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        (v128.store align=1 (i32.add (local.get $y) (local.get $p))
          (f32x4.mul
            (f32x4.mul
              (v128.load align=1 (i32.add (local.get $h) (local.get $p)))
              (v128.load align=1 (i32.add (local.get $s) (local.get $p))))
            (v128.load align=1 (i32.add (local.get $u) (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; SwiGLU backward: du = dy·(h·s), dh = (dy·u)·s + ((dy·u)·h)·(s·(1 − s))
  (func (export "swigluGrad")
    (param $dy i32) (param $h i32) (param $s i32) (param $u i32) (param $dh i32) (param $du i32) (param $nbytes i32)
    (local $p i32)
    (local $dy4 v128) (local $h4 v128) (local $s4 v128) (local $dyu4 v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        (local.set $dy4 (v128.load align=1 (i32.add (local.get $dy) (local.get $p))))
        (local.set $h4 (v128.load align=1 (i32.add (local.get $h) (local.get $p))))
        (local.set $s4 (v128.load align=1 (i32.add (local.get $s) (local.get $p))))
        ;; dy·u
        (local.set $dyu4 (f32x4.mul (local.get $dy4) (v128.load align=1 (i32.add (local.get $u) (local.get $p)))))
        ;; du = dy·(h·s)
        (v128.store align=1 (i32.add (local.get $du) (local.get $p))
          (f32x4.mul (local.get $dy4) (f32x4.mul (local.get $h4) (local.get $s4))))
        ;; dh = (dy·u)·s + ((dy·u)·h)·(s·(1 − s))
        (v128.store align=1 (i32.add (local.get $dh) (local.get $p))
          (f32x4.add
            (f32x4.mul (local.get $dyu4) (local.get $s4))
            (f32x4.mul
              (f32x4.mul (local.get $dyu4) (local.get $h4))
              (f32x4.mul (local.get $s4) (f32x4.sub (f32x4.splat (f32.const 1)) (local.get $s4))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; Four lane-wise maxima of |x|, stored as f32x4 at $out: M = max(M, |x|), M starting at 0 (locals start
  ;; zeroed); f32x4.max propagates NaN, so a NaN gradient shows in the result.
  (func (export "maxAbs")
    (param $x i32) (param $out i32) (param $nbytes i32)
    (local $p i32)
    (local $max4 v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        (local.set $max4
          (f32x4.max (local.get $max4) (f32x4.abs (v128.load align=1 (i32.add (local.get $x) (local.get $p))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))
    (v128.store align=1 (local.get $out) (local.get $max4)))

  ;; Σ (x/a)²: each square formed in float32 (as tfjs's chain forms it), lanes 0, 1 and lanes 2, 3 summed in two
  ;; f64x2 accumulators; stores their sum (two f64 lanes) at $out.
  (func (export "sumSquares")
    (param $x i32) (param $out i32) (param $nbytes i32) (param $a f32)
    (local $p i32)
    (local $ax4 v128)
    (local $sq4 v128) (local $lo2 v128) (local $hi2 v128)
    (local.set $ax4 (f32x4.splat (local.get $a)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        ;; q = x/a, then q·q
        (local.set $sq4 (f32x4.div (v128.load align=1 (i32.add (local.get $x) (local.get $p))) (local.get $ax4)))
        (local.set $sq4 (f32x4.mul (local.get $sq4) (local.get $sq4)))
        ;; lanes 0, 1 → lo; lanes 2, 3 moved down by the shuffle → hi
        (local.set $lo2 (f64x2.add (local.get $lo2) (f64x2.promote_low_f32x4 (local.get $sq4))))
        (local.set $hi2
          (f64x2.add (local.get $hi2)
            (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $sq4) (local.get $sq4)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))
    (v128.store align=1 (local.get $out) (f64x2.add (local.get $lo2) (local.get $hi2))))

  ;; Σ (dy·g)·x: each product in float32, summed in float64 as in sumSquares; two f64 lanes at $out.
  (func (export "dot3")
    (param $dy i32) (param $g i32) (param $x i32) (param $out i32) (param $nbytes i32)
    (local $p i32)
    (local $prod4 v128) (local $lo2 v128) (local $hi2 v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        (local.set $prod4
          (f32x4.mul
            (f32x4.mul
              (v128.load align=1 (i32.add (local.get $dy) (local.get $p)))
              (v128.load align=1 (i32.add (local.get $g) (local.get $p))))
            (v128.load align=1 (i32.add (local.get $x) (local.get $p)))))
        (local.set $lo2 (f64x2.add (local.get $lo2) (f64x2.promote_low_f32x4 (local.get $prod4))))
        (local.set $hi2
          (f64x2.add (local.get $hi2)
            (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $prod4) (local.get $prod4)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))
    (v128.store align=1 (local.get $out) (f64x2.add (local.get $lo2) (local.get $hi2))))

  ;; One RMSNorm row: y = (x·r)·g
  (func (export "scaleRow")
    (param $x i32) (param $g i32) (param $y i32) (param $nbytes i32) (param $r f32)
    (local $p i32)
    (local $rx4 v128)
    (local.set $rx4 (f32x4.splat (local.get $r)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        (v128.store align=1 (i32.add (local.get $y) (local.get $p))
          (f32x4.mul
            (f32x4.mul (v128.load align=1 (i32.add (local.get $x) (local.get $p))) (local.get $rx4))
            (v128.load align=1 (i32.add (local.get $g) (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; One RMSNorm row backward: dx = (dy·g)·r − x·k, dg += (dy·x)·r
  (func (export "rmsRowGrad")
    (param $dy i32) (param $g i32) (param $x i32) (param $dx i32) (param $dg i32) (param $nbytes i32)
    (param $r f32) (param $k f32)
    (local $p i32)
    (local $rx4 v128) (local $kx4 v128)
    (local.set $rx4 (f32x4.splat (local.get $r)))
    (local.set $kx4 (f32x4.splat (local.get $k)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        ;; dx = (dy·g)·r − x·k
        (v128.store align=1 (i32.add (local.get $dx) (local.get $p))
          (f32x4.sub
            (f32x4.mul
              (f32x4.mul
                (v128.load align=1 (i32.add (local.get $dy) (local.get $p)))
                (v128.load align=1 (i32.add (local.get $g) (local.get $p))))
              (local.get $rx4))
            (f32x4.mul (v128.load align=1 (i32.add (local.get $x) (local.get $p))) (local.get $kx4))))
        ;; dg = dg + (dy·x)·r
        (v128.store align=1 (i32.add (local.get $dg) (local.get $p))
          (f32x4.add
            (v128.load align=1 (i32.add (local.get $dg) (local.get $p)))
            (f32x4.mul
              (f32x4.mul
                (v128.load align=1 (i32.add (local.get $dy) (local.get $p)))
                (v128.load align=1 (i32.add (local.get $x) (local.get $p))))
              (local.get $rx4))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; RoPE on one head vector's halves, σ = ±1: o1 = x1·c − x2·(s·σ), o2 = x1·(s·σ) + x2·c
  (func (export "ropeRow")
    (param $x1 i32) (param $x2 i32) (param $c i32) (param $s i32) (param $o1 i32) (param $o2 i32) (param $nbytes i32)
    (param $sign f32)
    (local $p i32)
    (local $signx4 v128)
    (local $x14 v128) (local $x24 v128) (local $c4 v128) (local $s4 v128)
    (local.set $signx4 (f32x4.splat (local.get $sign)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
        (local.set $x14 (v128.load align=1 (i32.add (local.get $x1) (local.get $p))))
        (local.set $x24 (v128.load align=1 (i32.add (local.get $x2) (local.get $p))))
        (local.set $c4 (v128.load align=1 (i32.add (local.get $c) (local.get $p))))
        ;; s·σ
        (local.set $s4 (f32x4.mul (v128.load align=1 (i32.add (local.get $s) (local.get $p))) (local.get $signx4)))
        ;; o1 = x1·c − x2·(s·σ)
        (v128.store align=1 (i32.add (local.get $o1) (local.get $p))
          (f32x4.sub (f32x4.mul (local.get $x14) (local.get $c4)) (f32x4.mul (local.get $x24) (local.get $s4))))
        ;; o2 = x1·(s·σ) + x2·c
        (v128.store align=1 (i32.add (local.get $o2) (local.get $p))
          (f32x4.add (f32x4.mul (local.get $x14) (local.get $s4)) (f32x4.mul (local.get $x24) (local.get $c4))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))))
