//go:build amd64 && !purego

#include "textflag.h"

// PFDIST, PF4, PFQ8, PFQ4: as vec_amd64.s, the weight rows' prefetches,
// once per 64 bytes of each row at the start of a group of eight blocks.
#define PFDIST 3072

#define PF4(OFF) \
	PREFETCHT0 OFF(SI) \
	PREFETCHT0 OFF(SI)(R11*1) \
	PREFETCHT0 OFF(SI)(R11*2) \
	PREFETCHT0 OFF(SI)(R12*1)

#define PFQ8 \
	PF4(PFDIST) \
	PF4(PFDIST+64) \
	PF4(PFDIST+128) \
	PF4(PFDIST+192)

#define PFQ4 \
	PF4(PFDIST) \
	PF4(PFDIST+64)

// The 8-bit-activation kernels of dot8.go: four weight rows against one
// activation row, each activation block (32 int8 at DX) loaded once for
// the four, for groups consecutive groups of four rows (row stride sd, sq;
// wd+8(FP) and wq+24(FP) step to each group in turn). Registers as vec_amd64.s's four-row kernels: DI out, R8 wd
// (R10 its row stride, R13 three strides), SI wq (R11 its row stride, R12
// three), R9 xd, DX xq, R14 whole groups of eight blocks, CX the blocks
// after; Y0..Y3 the rows' lane accumulators, Y4 the activation block, Y8
// the scale product, Y15 0x0001 words, Y14 0x0f bytes, Y12 8 in every
// byte, Y13 q4_0's correction for the block (8·Σx, as the kernel needs it).

// HSUMPS leaves the sum of the eight float32 lanes of Y in the low lane
// of X (the same register), in hsum8's order, using T as scratch.
#define HSUMPS(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPS       T, X, X  \
	VPERMILPS    $0x4e, X, T \
	VADDPS       T, X, X  \
	VPERMILPS    $0xb1, X, T \
	VADDPS       T, X, X

// ROWSCALE sets Y8 to eight copies of the f16 scale at WD times xd[0]
// (R9), using AX.
#define ROWSCALE(WD) \
	MOVWLZX      WD, AX \
	VMOVD        AX, X8 \
	VCVTPH2PS    X8, X8 \
	VMULSS       (R9), X8, X8 \
	VBROADCASTSS X8, Y8

// ACC8 converts the eight int32 lane sums in S, scales them by Y8 and
// adds them to ACC.
#define ACC8(S, ACC) \
	VCVTDQ2PS S, S \
	VMULPS    Y8, S, S \
	VADDPS    S, ACC, ACC

// SCALES8 stores the four rows' scale products of the next eight blocks
// at 0, 32, 64 and 96(SP), lane for lane ROWSCALE's IEEE products.
#define SCALES8 \
	VMOVUPS   (R9), Y9 \
	VCVTPH2PS (R8), Y8 \
	VMULPS    Y9, Y8, Y8 \
	VMOVUPS   Y8, 0(SP) \
	VCVTPH2PS (R8)(R10*1), Y8 \
	VMULPS    Y9, Y8, Y8 \
	VMOVUPS   Y8, 32(SP) \
	VCVTPH2PS (R8)(R10*2), Y8 \
	VMULPS    Y9, Y8, Y8 \
	VMOVUPS   Y8, 64(SP) \
	VCVTPH2PS (R8)(R13*1), Y8 \
	VMULPS    Y9, Y8, Y8 \
	VMOVUPS   Y8, 96(SP)

// X4START sets the pointers and counts for the group of four rows whose
// scales and quants start at wd+8(FP) and wq+24(FP), and clears the
// accumulators.
#define X4START \
	MOVQ   wd+8(FP), R8 \
	MOVQ   wq+24(FP), SI \
	MOVQ   xd+40(FP), R9 \
	MOVQ   xq+48(FP), DX \
	MOVQ   nb+56(FP), CX \
	MOVQ   CX, R14 \
	SHRQ   $3, R14 \
	ANDQ   $7, CX \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3

#define X4PROLOGUE \
	MOVQ   out+0(FP), DI \
	MOVQ   sd+16(FP), R10 \
	MOVQ   sq+32(FP), R11 \
	LEAQ   (R10)(R10*2), R13 \
	LEAQ   (R11)(R11*2), R12 \
	MOVL   $0x00010001, AX \
	VMOVD  AX, X15 \
	VPBROADCASTD X15, Y15 \
	MOVL   $0x0f0f0f0f, AX \
	VMOVD  AX, X14 \
	VPBROADCASTD X14, Y14 \
	MOVL   $0x08080808, AX \
	VMOVD  AX, X12 \
	VPBROADCASTD X12, Y12

// X4STORE sums each row's lanes and stores the four results.
#define X4STORE \
	HSUMPS(Y0, X0, X6) \
	HSUMPS(Y1, X1, X6) \
	HSUMPS(Y2, X2, X6) \
	HSUMPS(Y3, X3, X6) \
	VMOVSS X0, (DI) \
	VMOVSS X1, 4(DI) \
	VMOVSS X2, 8(DI) \
	VMOVSS X3, 12(DI)

// X4NEXT steps wd+8(FP) and wq+24(FP) and DI to the next group of four
// rows.
#define X4NEXT \
	MOVQ wd+8(FP), R8 \
	LEAQ (R8)(R10*4), R8 \
	MOVQ R8, wd+8(FP) \
	MOVQ wq+24(FP), SI \
	LEAQ (SI)(R11*4), SI \
	MOVQ SI, wq+24(FP) \
	ADDQ $16, DI

// A8Q8 sets Y6 to the eight int32 lane sums of a q8_0 row's block at W
// times the activations Y4 (AVX2): |w| unsigned times x with w's sign by
// VPMADDUBSW (pairs of at most 2·128·127 < 2^15, no saturation), then
// pairs of pairs by VPMADDWD with ones.
#define A8Q8(W) \
	VMOVDQU    W, Y6 \
	VPSIGNB    Y6, Y4, Y7 \
	VPABSB     Y6, Y6 \
	VPMADDUBSW Y7, Y6, Y6 \
	VPMADDWD   Y15, Y6, Y6

// A8Q4 is A8Q8 for a q4_0 row's 16 bytes of nibbles at W: the nibbles,
// unsigned 0..15, times x by VPMADDUBSW, less 8·(x's pair sums) (Y13),
// exact in int16, then VPMADDWD with ones.
#define A8Q4(W) \
	VMOVDQU     W, X6 \
	VPSRLW      $4, X6, X7 \
	VINSERTI128 $1, X7, Y6, Y6 \
	VPAND       Y14, Y6, Y6 \
	VPMADDUBSW  Y4, Y6, Y6 \
	VPSUBW      Y13, Y6, Y6 \
	VPMADDWD    Y15, Y6, Y6

// A8Q4PRE sets Y13 to 8·(x_2i + x_2i+1) in word i.
#define A8Q4PRE VPMADDUBSW Y4, Y12, Y13

// V8Q8 is A8Q8 with VNNI: VPDPBUSD sums the four products of each lane
// into a cleared Y6.
#define V8Q8(W) \
	VMOVDQU  W, Y5 \
	VPSIGNB  Y5, Y4, Y7 \
	VPABSB   Y5, Y5 \
	VPXOR    Y6, Y6, Y6 \
	VPDPBUSD Y7, Y5, Y6

// V8Q4 is A8Q4 with VNNI: the lane sums start at −8·Σx (Y13) and
// VPDPBUSD adds the nibbles' products.
#define V8Q4(W) \
	VMOVDQU     W, X5 \
	VPSRLW      $4, X5, X7 \
	VINSERTI128 $1, X7, Y5, Y5 \
	VPAND       Y14, Y5, Y5 \
	VMOVDQA     Y13, Y6 \
	VPDPBUSD    Y4, Y5, Y6

// V8Q4PRE sets Y13 to −8·Σx over each lane's four elements.
#define V8Q4PRE \
	VPXOR    Y13, Y13, Y13 \
	VPDPBUSD Y4, Y12, Y13 \
	VPXOR    Y11, Y11, Y11 \
	VPSUBD   Y13, Y11, Y13

#define NOPRE

// func dotQ8_0Q8x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)
TEXT ·dotQ8_0Q8x4AVX2(SB), NOSPLIT, $128-72
	X4PROLOGUE

start:
	X4START
	TESTQ R14, R14
	JZ    tail

group:
	PFQ8
	SCALES8
	XORQ BX, BX

inner:
	VMOVDQU (DX), Y4
	A8Q8((SI))
	VBROADCASTSS 0(SP)(BX*4), Y8
	ACC8(Y6, Y0)
	A8Q8((SI)(R11*1))
	VBROADCASTSS 32(SP)(BX*4), Y8
	ACC8(Y6, Y1)
	A8Q8((SI)(R11*2))
	VBROADCASTSS 64(SP)(BX*4), Y8
	ACC8(Y6, Y2)
	A8Q8((SI)(R12*1))
	VBROADCASTSS 96(SP)(BX*4), Y8
	ACC8(Y6, Y3)
	ADDQ $32, SI
	ADDQ $32, DX
	INCQ BX
	CMPQ BX, $8
	JL   inner
	ADDQ $16, R8
	ADDQ $32, R9
	DECQ R14
	JNZ  group

tail:
	TESTQ CX, CX
	JZ    done
	VMOVDQU (DX), Y4
	A8Q8((SI))
	ROWSCALE((R8))
	ACC8(Y6, Y0)
	A8Q8((SI)(R11*1))
	ROWSCALE((R8)(R10*1))
	ACC8(Y6, Y1)
	A8Q8((SI)(R11*2))
	ROWSCALE((R8)(R10*2))
	ACC8(Y6, Y2)
	A8Q8((SI)(R12*1))
	ROWSCALE((R8)(R13*1))
	ACC8(Y6, Y3)
	ADDQ $32, SI
	ADDQ $2, R8
	ADDQ $4, R9
	ADDQ $32, DX
	DECQ CX
	JMP  tail

done:
	X4STORE
	DECQ groups+64(FP)
	JZ   end
	X4NEXT
	JMP  start

end:
	VZEROUPPER
	RET

// func dotQ4_0Q8x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)
TEXT ·dotQ4_0Q8x4AVX2(SB), NOSPLIT, $128-72
	X4PROLOGUE

start:
	X4START
	TESTQ R14, R14
	JZ    tail

group:
	PFQ4
	SCALES8
	XORQ BX, BX

inner:
	VMOVDQU (DX), Y4
	A8Q4PRE
	A8Q4((SI))
	VBROADCASTSS 0(SP)(BX*4), Y8
	ACC8(Y6, Y0)
	A8Q4((SI)(R11*1))
	VBROADCASTSS 32(SP)(BX*4), Y8
	ACC8(Y6, Y1)
	A8Q4((SI)(R11*2))
	VBROADCASTSS 64(SP)(BX*4), Y8
	ACC8(Y6, Y2)
	A8Q4((SI)(R12*1))
	VBROADCASTSS 96(SP)(BX*4), Y8
	ACC8(Y6, Y3)
	ADDQ $16, SI
	ADDQ $32, DX
	INCQ BX
	CMPQ BX, $8
	JL   inner
	ADDQ $16, R8
	ADDQ $32, R9
	DECQ R14
	JNZ  group

tail:
	TESTQ CX, CX
	JZ    done
	VMOVDQU (DX), Y4
	A8Q4PRE
	A8Q4((SI))
	ROWSCALE((R8))
	ACC8(Y6, Y0)
	A8Q4((SI)(R11*1))
	ROWSCALE((R8)(R10*1))
	ACC8(Y6, Y1)
	A8Q4((SI)(R11*2))
	ROWSCALE((R8)(R10*2))
	ACC8(Y6, Y2)
	A8Q4((SI)(R12*1))
	ROWSCALE((R8)(R13*1))
	ACC8(Y6, Y3)
	ADDQ $16, SI
	ADDQ $2, R8
	ADDQ $4, R9
	ADDQ $32, DX
	DECQ CX
	JMP  tail

done:
	X4STORE
	DECQ groups+64(FP)
	JZ   end
	X4NEXT
	JMP  start

end:
	VZEROUPPER
	RET

// func dotQ8_0Q8x4VNNI(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)
TEXT ·dotQ8_0Q8x4VNNI(SB), NOSPLIT, $128-72
	X4PROLOGUE

start:
	X4START
	TESTQ R14, R14
	JZ    tail

group:
	PFQ8
	SCALES8
	XORQ BX, BX

inner:
	VMOVDQU (DX), Y4
	V8Q8((SI))
	VBROADCASTSS 0(SP)(BX*4), Y8
	ACC8(Y6, Y0)
	V8Q8((SI)(R11*1))
	VBROADCASTSS 32(SP)(BX*4), Y8
	ACC8(Y6, Y1)
	V8Q8((SI)(R11*2))
	VBROADCASTSS 64(SP)(BX*4), Y8
	ACC8(Y6, Y2)
	V8Q8((SI)(R12*1))
	VBROADCASTSS 96(SP)(BX*4), Y8
	ACC8(Y6, Y3)
	ADDQ $32, SI
	ADDQ $32, DX
	INCQ BX
	CMPQ BX, $8
	JL   inner
	ADDQ $16, R8
	ADDQ $32, R9
	DECQ R14
	JNZ  group

tail:
	TESTQ CX, CX
	JZ    done
	VMOVDQU (DX), Y4
	V8Q8((SI))
	ROWSCALE((R8))
	ACC8(Y6, Y0)
	V8Q8((SI)(R11*1))
	ROWSCALE((R8)(R10*1))
	ACC8(Y6, Y1)
	V8Q8((SI)(R11*2))
	ROWSCALE((R8)(R10*2))
	ACC8(Y6, Y2)
	V8Q8((SI)(R12*1))
	ROWSCALE((R8)(R13*1))
	ACC8(Y6, Y3)
	ADDQ $32, SI
	ADDQ $2, R8
	ADDQ $4, R9
	ADDQ $32, DX
	DECQ CX
	JMP  tail

done:
	X4STORE
	DECQ groups+64(FP)
	JZ   end
	X4NEXT
	JMP  start

end:
	VZEROUPPER
	RET

// func dotQ4_0Q8x4VNNI(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)
TEXT ·dotQ4_0Q8x4VNNI(SB), NOSPLIT, $128-72
	X4PROLOGUE

start:
	X4START
	TESTQ R14, R14
	JZ    tail

group:
	PFQ4
	SCALES8
	XORQ BX, BX

inner:
	VMOVDQU (DX), Y4
	V8Q4PRE
	V8Q4((SI))
	VBROADCASTSS 0(SP)(BX*4), Y8
	ACC8(Y6, Y0)
	V8Q4((SI)(R11*1))
	VBROADCASTSS 32(SP)(BX*4), Y8
	ACC8(Y6, Y1)
	V8Q4((SI)(R11*2))
	VBROADCASTSS 64(SP)(BX*4), Y8
	ACC8(Y6, Y2)
	V8Q4((SI)(R12*1))
	VBROADCASTSS 96(SP)(BX*4), Y8
	ACC8(Y6, Y3)
	ADDQ $16, SI
	ADDQ $32, DX
	INCQ BX
	CMPQ BX, $8
	JL   inner
	ADDQ $16, R8
	ADDQ $32, R9
	DECQ R14
	JNZ  group

tail:
	TESTQ CX, CX
	JZ    done
	VMOVDQU (DX), Y4
	V8Q4PRE
	V8Q4((SI))
	ROWSCALE((R8))
	ACC8(Y6, Y0)
	V8Q4((SI)(R11*1))
	ROWSCALE((R8)(R10*1))
	ACC8(Y6, Y1)
	V8Q4((SI)(R11*2))
	ROWSCALE((R8)(R10*2))
	ACC8(Y6, Y2)
	V8Q4((SI)(R12*1))
	ROWSCALE((R8)(R13*1))
	ACC8(Y6, Y3)
	ADDQ $16, SI
	ADDQ $2, R8
	ADDQ $4, R9
	ADDQ $32, DX
	DECQ CX
	JMP  tail

done:
	X4STORE
	DECQ groups+64(FP)
	JZ   end
	X4NEXT
	JMP  start

end:
	VZEROUPPER
	RET

// The dword order that puts VPACKSSDW then VPACKSSWB's bytes (per 128-bit
// lane: four of each source vector in turn) back in element order.
DATA q8perm<>+0(SB)/4, $0
DATA q8perm<>+4(SB)/4, $4
DATA q8perm<>+8(SB)/4, $1
DATA q8perm<>+12(SB)/4, $5
DATA q8perm<>+16(SB)/4, $2
DATA q8perm<>+20(SB)/4, $6
DATA q8perm<>+24(SB)/4, $3
DATA q8perm<>+28(SB)/4, $7
GLOBL q8perm<>(SB), RODATA|NOPTR, $32

// func quantizeQ8AVX2(q *int8, d, x *float32, nb int)
//
// Per block: max|x| over four vectors, d = max/127 and 1/d in scalar (as
// the Go code), x·(1/d) converted with VCVTPS2DQ (round to nearest even,
// the default MXCSR mode), packed to int8 with signed saturation (so 127 at
// most) and raised to at least −127.
TEXT ·quantizeQ8AVX2(SB), NOSPLIT, $0-32
	MOVQ         q+0(FP), DI
	MOVQ         d+8(FP), R8
	MOVQ         x+16(FP), SI
	MOVQ         nb+24(FP), CX
	MOVL         $0x7fffffff, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15 // abs mask
	MOVL         $0x81818181, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14 // −127 bytes
	VMOVDQU      q8perm<>(SB), Y13
	MOVL         $0x42fe0000, AX // 127.0
	VMOVD        AX, X12
	MOVL         $0x3f800000, AX // 1.0
	VMOVD        AX, X11

block:
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y1
	VMOVUPS      64(SI), Y2
	VMOVUPS      96(SI), Y3
	VANDPS       Y15, Y0, Y4
	VANDPS       Y15, Y1, Y5
	VANDPS       Y15, Y2, Y6
	VANDPS       Y15, Y3, Y7
	VMAXPS       Y5, Y4, Y4
	VMAXPS       Y7, Y6, Y6
	VMAXPS       Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VMAXPS       X5, X4, X4
	VPERMILPS    $0x4e, X4, X5
	VMAXPS       X5, X4, X4
	VPERMILPS    $0xb1, X4, X5
	VMAXPS       X5, X4, X4
	VDIVSS       X12, X4, X4 // d
	VXORPS       X5, X5, X5
	VUCOMISS     X5, X4
	JEQ          zero
	VDIVSS       X4, X11, X5 // 1/d

zero:
	VBROADCASTSS X5, Y5
	VMULPS       Y5, Y0, Y0
	VMULPS       Y5, Y1, Y1
	VMULPS       Y5, Y2, Y2
	VMULPS       Y5, Y3, Y3
	VCVTPS2DQ    Y0, Y0
	VCVTPS2DQ    Y1, Y1
	VCVTPS2DQ    Y2, Y2
	VCVTPS2DQ    Y3, Y3
	VPACKSSDW    Y1, Y0, Y0
	VPACKSSDW    Y3, Y2, Y2
	VPACKSSWB    Y2, Y0, Y0
	VPERMD       Y0, Y13, Y0
	VPMAXSB      Y14, Y0, Y0
	VMOVDQU      Y0, (DI)
	VMOVSS       X4, (R8)
	ADDQ         $128, SI
	ADDQ         $32, DI
	ADDQ         $4, R8
	DECQ         CX
	JNZ          block
	VZEROUPPER
	RET
