//go:build amd64 && !purego

#include "textflag.h"

// The float32 constants of expInto (exp.go), as their bits.
DATA expc<>+0(SB)/4, $0x42b170a4  // 88.72
DATA expc<>+4(SB)/4, $0xc2aea8f6  // −87.33
DATA expc<>+8(SB)/4, $0x3fb8aa3b  // log2e
DATA expc<>+12(SB)/4, $0x4b400000 // magic 0x1.8p23
DATA expc<>+16(SB)/4, $0x3f318000 // c1
DATA expc<>+20(SB)/4, $0xb95e8083 // c2
DATA expc<>+24(SB)/4, $0x39506967 // p0 1.9875691500e-4
DATA expc<>+28(SB)/4, $0x3ab743ce // p1 1.3981999507e-3
DATA expc<>+32(SB)/4, $0x3c088908 // p2 8.3334519073e-3
DATA expc<>+36(SB)/4, $0x3d2aa9c1 // p3 4.1665795894e-2
DATA expc<>+40(SB)/4, $0x3e2aaaaa // p4 1.6666665459e-1
DATA expc<>+44(SB)/4, $0x3f000000 // p5 5.0000001201e-1
DATA expc<>+48(SB)/4, $0x3f800000 // 1
DATA expc<>+52(SB)/4, $127
DATA expc<>+56(SB)/4, $0x80000000 // the sign bit
GLOBL expc<>(SB), RODATA|NOPTR, $60

// EXPCONSTS broadcasts the constants the loop keeps in registers: Y15 the
// upper clamp, Y14 the lower, Y13 log2e, Y12 magic, Y11 c1, Y10 c2, Y9 1,
// Y8 127 (int32), Y7 the sign bit.
#define EXPCONSTS \
	VBROADCASTSS expc<>+0(SB), Y15 \
	VBROADCASTSS expc<>+4(SB), Y14 \
	VBROADCASTSS expc<>+8(SB), Y13 \
	VBROADCASTSS expc<>+12(SB), Y12 \
	VBROADCASTSS expc<>+16(SB), Y11 \
	VBROADCASTSS expc<>+20(SB), Y10 \
	VBROADCASTSS expc<>+48(SB), Y9 \
	VBROADCASTSS expc<>+52(SB), Y8 \
	VBROADCASTSS expc<>+56(SB), Y7

// POLY steps the polynomial in Y4 by one coefficient (at OFF): p = p·r + c,
// each operation rounded, as exp.go.
#define POLY(OFF) \
	VMULPS       Y0, Y4, Y4 \
	VBROADCASTSS expc<>+OFF(SB), Y5 \
	VADDPS       Y5, Y4, Y4

// EXP8 sets Y0 to Exp of the eight values in Y0, with expInto's operations
// in its order (so the same bits), using Y1..Y5. VMINPS and VMAXPS take
// the argument as their second source, which they return when it is NaN,
// as Go's min and max do.
#define EXP8 \
	VMINPS       Y0, Y15, Y0 \
	VMAXPS       Y0, Y14, Y0 \
	VMULPS       Y13, Y0, Y1 \
	VADDPS       Y12, Y1, Y1 \
	VSUBPS       Y12, Y1, Y1 \
	VMULPS       Y11, Y1, Y2 \
	VSUBPS       Y2, Y0, Y0  \
	VMULPS       Y10, Y1, Y2 \
	VSUBPS       Y2, Y0, Y0  \
	VMULPS       Y0, Y0, Y3  \
	VBROADCASTSS expc<>+24(SB), Y4 \
	POLY(28) \
	POLY(32) \
	POLY(36) \
	POLY(40) \
	POLY(44) \
	VMULPS       Y3, Y4, Y4 \
	VADDPS       Y0, Y4, Y4 \
	VADDPS       Y9, Y4, Y4 \
	VCVTTPS2DQ   Y1, Y1 \     // k
	VPSRAD       $1, Y1, Y2 \
	VPSUBD       Y2, Y1, Y1 \
	VPADDD       Y8, Y2, Y2 \
	VPSLLD       $23, Y2, Y2 \
	VPADDD       Y8, Y1, Y1 \
	VPSLLD       $23, Y1, Y1 \
	VMULPS       Y2, Y4, Y4 \
	VMULPS       Y1, Y4, Y0

// func siluMulAVX2(gp, u *float32, n int)
//
// g[i] = g[i]/(1 + Exp(−g[i]))·u[i] for n a multiple of 8, as SiLUMul.
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-24
	MOVQ gp+0(FP), DI
	MOVQ u+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   done
	EXPCONSTS

loop:
	VMOVUPS (DI), Y6
	VXORPS  Y7, Y6, Y0
	EXP8
	VADDPS  Y9, Y0, Y0
	VDIVPS  Y0, Y6, Y6
	VMULPS  (SI), Y6, Y6
	VMOVUPS Y6, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     loop
	VZEROUPPER

done:
	RET

// func expShiftAVX2(dst, x *float32, n int, m float32)
//
// dst[i] = Exp(x[i] − m) for n a multiple of 8.
TEXT ·expShiftAVX2(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Y6
	SHRQ         $3, CX
	JZ           done
	EXPCONSTS

loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y6, Y0, Y0
	EXP8
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     loop
	VZEROUPPER

done:
	RET
