//go:build amd64 && !purego

#include "textflag.h"

// PFDIST is how far ahead of the blocks in use the four-row decode
// kernels ask for each weight row's bytes: decode streams weights from
// memory, and with the hardware prefetcher alone the kernels waited on it.
// PF4 prefetches one cache line of each of the four rows (SI, R11 the row
// stride, R12 three); the kernels issue it once per 64 bytes of a row, at
// the start of each group of eight blocks (asking once per block cost
// more than it saved on rows of 256 bytes). 3072 bytes, as far as the
// one-row AVX-512 kernels ask (Q4AHEAD): 512 left the four streams of
// 1024-column q4_0 rows at 6.5–6.8 GB/s (BenchmarkQ4Shape/128x512x1024/x4N),
// 3072 took them to 9.9–10.8; four-row AVX2 is what decode runs on
// machines without AVX-512 (RATIONALE.md, "The four-row kernels ask
// further ahead").
#define PFDIST 3072

#define PF4(OFF) \
	PREFETCHT0 OFF(SI) \
	PREFETCHT0 OFF(SI)(R11*1) \
	PREFETCHT0 OFF(SI)(R11*2) \
	PREFETCHT0 OFF(SI)(R12*1)

// PFQ8 and PFQ4 prefetch the group of eight blocks PFDIST bytes ahead in
// the four rows: 256 bytes of q8_0 quants, 128 of q4_0.
#define PFQ8 \
	PF4(PFDIST) \
	PF4(PFDIST+64) \
	PF4(PFDIST+128) \
	PF4(PFDIST+192)

// The AVX-512 four-row matrix-vector kernel (dotQ8_0x4NAVX512)
// prefetch the next group of four rows instead: the same eight blocks of
// rows r+4..r+7 (AX = SI + 4 row strides) and their scales, once per group
// of eight blocks (q8_0: the quants one line a row every two blocks, see
// Q8X4BLOCK). Their rows are consecutive rows of one matrix, often
// short (512 columns: 256 bytes of q4_0 quants, which the in-row distance
// above overshoots into rows being read already), and by the time the
// kernel reaches the next four rows their bytes have arrived.
#define PFNEXT4(OFF) \
	PREFETCHT0 OFF(AX) \
	PREFETCHT0 OFF(AX)(R11*1) \
	PREFETCHT0 OFF(AX)(R11*2) \
	PREFETCHT0 OFF(AX)(R12*1)

#define PFNEXTSCALES \
	LEAQ       (R8)(R10*4), AX \
	PREFETCHT0 (AX) \
	PREFETCHT0 (AX)(R10*1) \
	PREFETCHT0 (AX)(R10*2) \
	PREFETCHT0 (AX)(R13*1)

// ROWSTART starts a row of the one-row kernels (dotQ8_0x1NAVX512,
// dotQ4_0x1NAVX512 and their AVX2 counterparts): R8 and SI at the row's
// scales and quants (R12, R11), R9 and DX at the activations' scales (xd)
// and quants XQ, R13 the row's whole groups of eight of its NB blocks and
// CX the blocks after, Y0 cleared.
#define ROWSTART(XQ, NB) \
	MOVQ   R12, R8 \
	MOVQ   R11, SI \
	MOVQ   xd+40(FP), R9 \
	MOVQ   XQ, DX \
	MOVQ   NB, CX \
	MOVQ   CX, R13 \
	SHRQ   $3, R13 \
	ANDQ   $7, CX \
	VXORPS Y0, Y0, Y0

// HSUMPS leaves the sum of the eight float32 lanes of Y in the low lane
// of X (the same register), in hsum8's order, using T as scratch.
#define HSUMPS(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPS       T, X, X  \
	VPERMILPS    $0x4e, X, T \
	VADDPS       T, X, X  \
	VPERMILPS    $0xb1, X, T \
	VADDPS       T, X, X

// ROWEND1 ends a row of an AVX2 one-row kernel: hsum8 of Y0 into (DI),
// then ROWNEXT.
#define ROWEND1(LABEL) \
	HSUMPS(Y0, X0, X6) \
	VMOVSS X0, (DI) \
	ROWNEXT(LABEL)

// ROWNEXT steps a one-row kernel's output and row pointers on to the
// next row and goes back to LABEL while rows are left in BX, else ends.
#define ROWNEXT(LABEL) \
	ADDQ   $4, DI \
	ADDQ   sd+16(FP), R12 \
	ADDQ   sq+32(FP), R11 \
	DECQ   BX \
	JNZ    LABEL \
	VZEROUPPER \
	RET

// BLOCKSCALE sets Y to eight copies of f16 wd[0] times xd[0] and advances
// both, using AX and X as scratch.
#define BLOCKSCALE(Y, X) \
	MOVWLZX   (R8), AX \
	VMOVD     AX, X \
	VCVTPH2PS X, X \
	VMULSS    (R9), X, X \
	VBROADCASTSS X, Y \
	ADDQ      $2, R8 \
	ADDQ      $4, R9

// ROWSCALE sets Y8 to eight copies of the f16 scale at WD times xd[0]
// (R9), the scale product of one row's block, using AX.
#define ROWSCALE(WD) \
	MOVWLZX      WD, AX \
	VMOVD        AX, X8 \
	VCVTPH2PS    X8, X8 \
	VMULSS       (R9), X8, X8 \
	VBROADCASTSS X8, Y8

// ACCUMULATE converts the eight int32 lane sums in Y6, scales them by Y8
// and adds them to ACC.
#define ACCUMULATE(ACC) \
	VCVTDQ2PS Y6, Y6 \
	VMULPS    Y8, Y6, Y6 \
	VADDPS    Y6, ACC, ACC

// ROWQ8 sets Y6 to the eight int32 lane sums of one q8_0 row's block
// (quants at W, W16 = W+16) times the activations' block in Y4:Y5.
#define ROWQ8(W, W16) \
	VPMOVSXBW W, Y6 \
	VPMOVSXBW W16, Y7 \
	VPMADDWD  Y4, Y6, Y6 \
	VPMADDWD  Y5, Y7, Y7 \
	VPADDD    Y7, Y6, Y6

// SCALES8 stores, for the four rows, the scale products of the next eight
// blocks (eight f16 weight scales at once times the activations' eight
// xd) at 0, 32, 64 and 96(SP); lane for lane the same IEEE products
// ROWSCALE computes one at a time.
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

// X4PROLOGUE loads the four-row kernels' arguments: DI out, R8 wd (R10 its
// row stride, R13 three strides), SI wq (R11 its row stride, R12 three),
// R9 xd, DX xq, R14 whole groups of eight blocks, CX the blocks after.
#define X4PROLOGUE \
	MOVQ   out+0(FP), DI \
	MOVQ   wd+8(FP), R8 \
	MOVQ   sd+16(FP), R10 \
	MOVQ   wq+24(FP), SI \
	MOVQ   sq+32(FP), R11 \
	MOVQ   xd+40(FP), R9 \
	MOVQ   xq+48(FP), DX \
	MOVQ   nb+56(FP), CX \
	LEAQ   (R10)(R10*2), R13 \
	LEAQ   (R11)(R11*2), R12 \
	MOVQ   CX, R14 \
	SHRQ   $3, R14 \
	ANDQ   $7, CX \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3

// X4EPILOGUE sums each row's lanes and stores the four results.
#define X4EPILOGUE \
	HSUMPS(Y0, X0, X6) \
	HSUMPS(Y1, X1, X6) \
	HSUMPS(Y2, X2, X6) \
	HSUMPS(Y3, X3, X6) \
	VMOVSS X0, (DI) \
	VMOVSS X1, 4(DI) \
	VMOVSS X2, 8(DI) \
	VMOVSS X3, 12(DI) \
	VZEROUPPER

// The 2×4 tile kernels below compute DotQ8_0/DotQ4_0 for two weight rows
// and four activation rows at once: each weight block is unpacked to int16
// once (Y8:Y9 row 0, Y10:Y11 row 1) and multiplied by the four activation
// blocks read from memory, the eight lane accumulators of row r, token t in
// Y(4r+t). Per output the lanes are what the one-row kernel computes, so
// the bits are the same.
//
// Registers: SI wq (R11 its row stride), R8 wd (R10 its row stride), R9 xd
// and DX xq of token 0 (token t at t·DI bytes of xd and t·R12 of xq, R13
// three times R12), R14 whole groups of eight blocks, CX the blocks after,
// BX the block within a group. The scale products of a group's eight
// blocks, row r, token t, are at (4r+t)·32(SP).

// ZERO8 clears Y0..Y7, eight accumulators.
#define ZERO8 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7

// TILEPROLOGUE loads the arguments and clears the accumulators.
#define TILEPROLOGUE \
	MOVQ   wd+8(FP), R8 \
	MOVQ   sd+16(FP), R10 \
	MOVQ   wq+24(FP), SI \
	MOVQ   sq+32(FP), R11 \
	MOVQ   xd+40(FP), R9 \
	MOVQ   xq+48(FP), DX \
	MOVQ   xs+56(FP), DI \
	MOVQ   nb+64(FP), CX \
	SHLQ   $2, DI \
	MOVQ   DI, R12 \
	SHLQ   $4, R12 \
	LEAQ   (R12)(R12*2), R13 \
	MOVQ   CX, R14 \
	SHRQ   $3, R14 \
	ANDQ   $7, CX \
	ZERO8

// TILESCALES8 stores the scale products of the next eight blocks: the two
// rows' f16 scales converted eight at a time, times each token's eight xd.
#define TILESCALES8 \
	VCVTPH2PS (R8), Y8 \
	VCVTPH2PS (R8)(R10*1), Y9 \
	MOVQ      R9, AX \
	VMULPS    (AX), Y8, Y10 \
	VMULPS    (AX), Y9, Y11 \
	VMOVUPS   Y10, 0(SP) \
	VMOVUPS   Y11, 128(SP) \
	ADDQ      DI, AX \
	VMULPS    (AX), Y8, Y10 \
	VMULPS    (AX), Y9, Y11 \
	VMOVUPS   Y10, 32(SP) \
	VMOVUPS   Y11, 160(SP) \
	ADDQ      DI, AX \
	VMULPS    (AX), Y8, Y10 \
	VMULPS    (AX), Y9, Y11 \
	VMOVUPS   Y10, 64(SP) \
	VMOVUPS   Y11, 192(SP) \
	ADDQ      DI, AX \
	VMULPS    (AX), Y8, Y10 \
	VMULPS    (AX), Y9, Y11 \
	VMOVUPS   Y10, 96(SP) \
	VMOVUPS   Y11, 224(SP)

// TILESCALE1 stores the scale products of one block (the same IEEE
// products, one at a time) in the first slot of each output's eight.
#define TILESCALE1 \
	MOVWLZX   (R8), AX \
	VMOVD     AX, X8 \
	VCVTPH2PS X8, X8 \
	MOVWLZX   (R8)(R10*1), AX \
	VMOVD     AX, X9 \
	VCVTPH2PS X9, X9 \
	MOVQ      R9, AX \
	VMULSS    (AX), X8, X10 \
	VMULSS    (AX), X9, X11 \
	VMOVSS    X10, 0(SP) \
	VMOVSS    X11, 128(SP) \
	ADDQ      DI, AX \
	VMULSS    (AX), X8, X10 \
	VMULSS    (AX), X9, X11 \
	VMOVSS    X10, 32(SP) \
	VMOVSS    X11, 160(SP) \
	ADDQ      DI, AX \
	VMULSS    (AX), X8, X10 \
	VMULSS    (AX), X9, X11 \
	VMOVSS    X10, 64(SP) \
	VMOVSS    X11, 192(SP) \
	ADDQ      DI, AX \
	VMULSS    (AX), X8, X10 \
	VMULSS    (AX), X9, X11 \
	VMOVSS    X10, 96(SP) \
	VMOVSS    X11, 224(SP)

// TILEMAC multiplies the unpacked weights WLO:WHI by one token's block
// (at XQ, XQ32 = XQ+32), scales the lane sums by the product at SC and adds
// them to ACC.
#define TILEMAC(WLO, WHI, XQ, XQ32, SC, ACC) \
	VPMADDWD     XQ, WLO, Y12 \
	VPMADDWD     XQ32, WHI, Y13 \
	VPADDD       Y13, Y12, Y12 \
	VCVTDQ2PS    Y12, Y12 \
	VBROADCASTSS SC, Y13 \
	VMULPS       Y13, Y12, Y12 \
	VADDPS       Y12, ACC, ACC

// TILEBLOCK runs the eight outputs' products for one block whose weights
// are unpacked, then advances xq to the next block.
#define TILEBLOCK \
	TILEMAC(Y8, Y9, (DX), 32(DX), 0(SP)(BX*4), Y0) \
	TILEMAC(Y10, Y11, (DX), 32(DX), 128(SP)(BX*4), Y4) \
	TILEMAC(Y8, Y9, (DX)(R12*1), 32(DX)(R12*1), 32(SP)(BX*4), Y1) \
	TILEMAC(Y10, Y11, (DX)(R12*1), 32(DX)(R12*1), 160(SP)(BX*4), Y5) \
	TILEMAC(Y8, Y9, (DX)(R12*2), 32(DX)(R12*2), 64(SP)(BX*4), Y2) \
	TILEMAC(Y10, Y11, (DX)(R12*2), 32(DX)(R12*2), 192(SP)(BX*4), Y6) \
	TILEMAC(Y8, Y9, (DX)(R13*1), 32(DX)(R13*1), 96(SP)(BX*4), Y3) \
	TILEMAC(Y10, Y11, (DX)(R13*1), 32(DX)(R13*1), 224(SP)(BX*4), Y7) \
	ADDQ $64, DX

// UNPACKQ8 widens the two rows' q8_0 block at SI to int16.
#define UNPACKQ8 \
	VPMOVSXBW (SI), Y8 \
	VPMOVSXBW 16(SI), Y9 \
	VPMOVSXBW (SI)(R11*1), Y10 \
	VPMOVSXBW 16(SI)(R11*1), Y11

// TILEEPILOGUE sums each output's lanes and stores out[4r+t].
#define TILEEPILOGUE \
	MOVQ   out+0(FP), DI \
	HSUMPS(Y0, X0, X12) \
	HSUMPS(Y1, X1, X12) \
	HSUMPS(Y2, X2, X12) \
	HSUMPS(Y3, X3, X12) \
	HSUMPS(Y4, X4, X12) \
	HSUMPS(Y5, X5, X12) \
	HSUMPS(Y6, X6, X12) \
	HSUMPS(Y7, X7, X12) \
	VMOVSS X0, (DI) \
	VMOVSS X1, 4(DI) \
	VMOVSS X2, 8(DI) \
	VMOVSS X3, 12(DI) \
	VMOVSS X4, 16(DI) \
	VMOVSS X5, 20(DI) \
	VMOVSS X6, 24(DI) \
	VMOVSS X7, 28(DI) \
	VZEROUPPER

// The AVX-512 kernels below (with VNNI's VPDPWSSD) run two weight rows in
// one 512-bit register: row r's int16 weights in half r, the activation
// block broadcast to both halves, so that each half holds exactly the
// eight lanes the AVX2 kernels hold for that row, summed and scaled in the
// same order: the bits are the same. The scale products come from a table
// of sixteen (eight blocks of each row) by VPERMPS with Z15, which holds
// the block index in its low half and 8 plus it in its high half (Z12:
// block 0; Z11: ones, to step it).

// PAIRQ8 widens the q8_0 blocks of two rows (32 bytes at W0 and W1) to
// int16: Z6 elements 0..15 of row 0 then row 1, Z7 elements 16..31.
#define PAIRQ8(W0, W0H, W1, W1H) \
	VMOVDQU     W0, X6 \
	VINSERTI128 $1, W1, Y6, Y6 \
	VPMOVSXBW   Y6, Z6 \
	VMOVDQU     W0H, X7 \
	VINSERTI128 $1, W1H, Y7, Y7 \
	VPMOVSXBW   Y7, Z7

// PAIRMAC multiplies the pair's widened block by the activation block in
// Z4 (elements 0..15, both halves) and Z5 (16..31), scales the lane sums by
// the products that Z15 picks from SCTAB and adds them to ACC.
#define PAIRMAC(SCTAB, ACC) \
	VPMADDWD  Z4, Z6, Z20 \
	VPDPWSSD  Z5, Z7, Z20 \
	VCVTDQ2PS Z20, Z20 \
	VPERMPS   SCTAB, Z15, Z21 \
	VMULPS    Z21, Z20, Z20 \
	VADDPS    Z20, ACC, ACC

// PAIRCONSTS sets Z11 (ones), Z12 (0 then 8), Z13 (8 words), Z14 (0x000f
// words), using AX.
#define PAIRCONSTS \
	MOVL          $1, AX \
	VPBROADCASTD  AX, Z11 \
	MOVL          $8, AX \
	VPBROADCASTD  AX, Y12 \
	VPXORD        Z20, Z20, Z20 \
	VINSERTI64X4  $1, Y12, Z20, Z12 \
	MOVL          $0x00080008, AX \
	VPBROADCASTD  AX, Z13 \
	MOVL          $0x000f000f, AX \
	VPBROADCASTD  AX, Z14

// X4SCALES8Z sets Z9 to the scale products of the next eight blocks of
// rows 0 and 1, Z10 of rows 2 and 3 (registers as X4PROLOGUE), and Z15 to
// block 0.
#define X4SCALES8Z \
	VMOVUPS       (R9), Y4 \
	VCVTPH2PS     (R8), Y9 \
	VMULPS        Y4, Y9, Y9 \
	VCVTPH2PS     (R8)(R10*1), Y5 \
	VMULPS        Y4, Y5, Y5 \
	VINSERTF64X4  $1, Y5, Z9, Z9 \
	VCVTPH2PS     (R8)(R10*2), Y10 \
	VMULPS        Y4, Y10, Y10 \
	VCVTPH2PS     (R8)(R13*1), Y5 \
	VMULPS        Y4, Y5, Y5 \
	VINSERTF64X4  $1, Y5, Z10, Z10 \
	VMOVDQA64     Z12, Z15

// X4SCALE1Z is X4SCALES8Z for one block, the products broadcast.
#define X4SCALE1Z \
	ROWSCALE((R8)) \
	VMOVAPS      Y8, Y9 \
	ROWSCALE((R8)(R10*1)) \
	VINSERTF64X4 $1, Y8, Z9, Z9 \
	ROWSCALE((R8)(R10*2)) \
	VMOVAPS      Y8, Y10 \
	ROWSCALE((R8)(R13*1)) \
	VINSERTF64X4 $1, Y8, Z10, Z10 \
	VMOVDQA64    Z12, Z15

// TILESCALES8Z sets Z16+t to the scale products of the next eight blocks
// of the two rows and token t (registers as TILEPROLOGUE), Z15 to block 0.
#define TILESCALES8Z \
	VCVTPH2PS     (R8), Y8 \
	VCVTPH2PS     (R8)(R10*1), Y9 \
	MOVQ          R9, AX \
	VMULPS        (AX), Y8, Y16 \
	VMULPS        (AX), Y9, Y10 \
	VINSERTF64X4  $1, Y10, Z16, Z16 \
	ADDQ          DI, AX \
	VMULPS        (AX), Y8, Y17 \
	VMULPS        (AX), Y9, Y10 \
	VINSERTF64X4  $1, Y10, Z17, Z17 \
	ADDQ          DI, AX \
	VMULPS        (AX), Y8, Y18 \
	VMULPS        (AX), Y9, Y10 \
	VINSERTF64X4  $1, Y10, Z18, Z18 \
	ADDQ          DI, AX \
	VMULPS        (AX), Y8, Y19 \
	VMULPS        (AX), Y9, Y10 \
	VINSERTF64X4  $1, Y10, Z19, Z19 \
	VMOVDQA64     Z12, Z15

// TILESCALE1TOK sets Z(TAB) to token t's (xd at AX) products for one block,
// broadcast (X8, X9: the rows' scales).
#define TILESCALE1TOK(TABY, TABZ) \
	VMULSS        (AX), X8, X10 \
	VBROADCASTSS  X10, TABY \
	VMULSS        (AX), X9, X10 \
	VBROADCASTSS  X10, Y10 \
	VINSERTF64X4  $1, Y10, TABZ, TABZ

// TILESCALE1Z is TILESCALES8Z for one block.
#define TILESCALE1Z \
	MOVWLZX   (R8), AX \
	VMOVD     AX, X8 \
	VCVTPH2PS X8, X8 \
	MOVWLZX   (R8)(R10*1), AX \
	VMOVD     AX, X9 \
	VCVTPH2PS X9, X9 \
	MOVQ      R9, AX \
	TILESCALE1TOK(Y16, Z16) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y17, Z17) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y18, Z18) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y19, Z19) \
	VMOVDQA64 Z12, Z15

// TILETOKZ runs the pair's unpacked block (Z6, Z7) against token t's
// block at XQ.
#define TILETOKZ(XQ, XQ32, SCTAB, ACC) \
	VBROADCASTI64X4 XQ, Z4 \
	VBROADCASTI64X4 XQ32, Z5 \
	PAIRMAC(SCTAB, ACC)

// TILEBLOCKZ runs one unpacked block against the four tokens, then steps
// xq and the block index.
#define TILEBLOCKZ \
	TILETOKZ((DX), 32(DX), Z16, Z0) \
	TILETOKZ((DX)(R12*1), 32(DX)(R12*1), Z17, Z1) \
	TILETOKZ((DX)(R12*2), 32(DX)(R12*2), Z18, Z2) \
	TILETOKZ((DX)(R13*1), 32(DX)(R13*1), Z19, Z3) \
	VPADDD Z11, Z15, Z15 \
	ADDQ   $64, DX

// TILEEPILOGUEZ stores out[4r+t] from the halves of Z(t).
#define TILEEPILOGUEZ \
	MOVQ          out+0(FP), DI \
	VEXTRACTF64X4 $1, Z0, Y4 \
	VEXTRACTF64X4 $1, Z1, Y5 \
	VEXTRACTF64X4 $1, Z2, Y6 \
	VEXTRACTF64X4 $1, Z3, Y7 \
	HSUMPS(Y0, X0, X12) \
	HSUMPS(Y1, X1, X12) \
	HSUMPS(Y2, X2, X12) \
	HSUMPS(Y3, X3, X12) \
	HSUMPS(Y4, X4, X12) \
	HSUMPS(Y5, X5, X12) \
	HSUMPS(Y6, X6, X12) \
	HSUMPS(Y7, X7, X12) \
	VMOVSS X0, (DI) \
	VMOVSS X1, 4(DI) \
	VMOVSS X2, 8(DI) \
	VMOVSS X3, 12(DI) \
	VMOVSS X4, 16(DI) \
	VMOVSS X5, 20(DI) \
	VMOVSS X6, 24(DI) \
	VMOVSS X7, 28(DI) \
	VZEROUPPER

// func dotAVX2(a, b *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DX
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

loop32:
	CMPQ CX, $32
	JL   loop8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	VFMADD231PS 64(DX), Y6, Y2
	VFMADD231PS 96(DX), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DX
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ CX, $8
	JL   reduce
	VMOVUPS     (SI), Y4
	VFMADD231PS (DX), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DX
	SUBQ        $8, CX
	JMP         loop8

reduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VADDPS       X1, X0, X0

tail:
	TESTQ CX, CX
	JZ    done
	VMOVSS      (SI), X1
	VFMADD231SS (DX), X1, X0
	ADDQ        $4, SI
	ADDQ        $4, DX
	DECQ        CX
	JMP         tail

done:
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func axpyAVX2(y, x *float32, n int, a float32)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-28
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS a+24(FP), Y0

loop8:
	CMPQ CX, $8
	JL   tail
	VMOVUPS     (DI), Y1
	VFMADD231PS (SI), Y0, Y1
	VMOVUPS     Y1, (DI)
	ADDQ        $32, DI
	ADDQ        $32, SI
	SUBQ        $8, CX
	JMP         loop8

tail:
	TESTQ CX, CX
	JZ    done
	VMOVSS      (DI), X1
	VFMADD231SS (SI), X0, X1
	VMOVSS      X1, (DI)
	ADDQ        $4, DI
	ADDQ        $4, SI
	DECQ        CX
	JMP         tail

done:
	VZEROUPPER
	RET

// func cpuid1ECX() uint32
TEXT ·cpuid1ECX(SB), NOSPLIT, $0-4
	MOVL  $1, AX
	XORL  CX, CX
	CPUID
	MOVL  CX, ret+0(FP)
	RET

// func halfToFloatAVX2(dst *float32, src *byte, n int)
TEXT ·halfToFloatAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop8:
	CMPQ      CX, $8
	JL        tail
	VCVTPH2PS (SI), Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JMP       loop8

tail:
	TESTQ     CX, CX
	JZ        done
	MOVWLZX   (SI), AX
	VMOVD     AX, X0
	VCVTPH2PS X0, X0
	VMOVSS    X0, (DI)
	ADDQ      $2, SI
	ADDQ      $4, DI
	DECQ      CX
	JMP       tail

done:
	VZEROUPPER
	RET

// func dotQ8_0x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, nb int)
//
// Four rows of dotQ8_0x1NAVX2 in Y0..Y3, sharing the activation loads; row r
// is at wd + r·sd and wq + r·sq. Blocks go in groups of eight whose scale
// products are computed eight at a time (SCALES8), then one by one.
TEXT ·dotQ8_0x4AVX2(SB), NOSPLIT, $128-64
	X4PROLOGUE
	TESTQ R14, R14
	JZ    tail

group:
	PFQ8
	SCALES8
	XORQ BX, BX

inner:
	VMOVDQU      (DX), Y4
	VMOVDQU      32(DX), Y5
	ROWQ8((SI), 16(SI))
	VBROADCASTSS 0(SP)(BX*4), Y8
	ACCUMULATE(Y0)
	ROWQ8((SI)(R11*1), 16(SI)(R11*1))
	VBROADCASTSS 32(SP)(BX*4), Y8
	ACCUMULATE(Y1)
	ROWQ8((SI)(R11*2), 16(SI)(R11*2))
	VBROADCASTSS 64(SP)(BX*4), Y8
	ACCUMULATE(Y2)
	ROWQ8((SI)(R12*1), 16(SI)(R12*1))
	VBROADCASTSS 96(SP)(BX*4), Y8
	ACCUMULATE(Y3)
	ADDQ         $32, SI
	ADDQ         $64, DX
	INCQ         BX
	CMPQ         BX, $8
	JL           inner
	ADDQ         $16, R8
	ADDQ         $32, R9
	DECQ         R14
	JNZ          group

tail:
	TESTQ CX, CX
	JZ    done
	VMOVDQU (DX), Y4
	VMOVDQU 32(DX), Y5
	ROWQ8((SI), 16(SI))
	ROWSCALE((R8))
	ACCUMULATE(Y0)
	ROWQ8((SI)(R11*1), 16(SI)(R11*1))
	ROWSCALE((R8)(R10*1))
	ACCUMULATE(Y1)
	ROWQ8((SI)(R11*2), 16(SI)(R11*2))
	ROWSCALE((R8)(R10*2))
	ACCUMULATE(Y2)
	ROWQ8((SI)(R12*1), 16(SI)(R12*1))
	ROWSCALE((R8)(R13*1))
	ACCUMULATE(Y3)
	ADDQ    $32, SI
	ADDQ    $2, R8
	ADDQ    $4, R9
	ADDQ    $64, DX
	DECQ    CX
	JMP     tail

done:
	X4EPILOGUE
	RET

// func dotTileAVX2(out *float32, w *float32, ws, rows int, x *float32, xs, cols, n int)
//
// One 8-lane accumulator per output, fused multiply-adds over the chunks
// of eight, hsum8, then the tail in order with scalar fused multiply-adds
// (see tile.go). The 4×3 tile keeps its twelve accumulators in Y0..Y11
// (row r, column t in Y(3r+t)), the three activation chunks in Y12..Y14
// and one weight chunk at a time in Y15.
TEXT ·dotTileAVX2(SB), NOSPLIT, $0-64
	MOVQ out+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ ws+16(FP), R8
	MOVQ x+32(FP), DX
	MOVQ xs+40(FP), R9
	MOVQ n+56(FP), CX
	LEAQ (R8)(R8*2), R10
	MOVQ CX, BX
	ANDQ $7, BX
	SHRQ $3, CX
	MOVQ rows+24(FP), AX
	CMPQ AX, $1
	JEQ  t11
	MOVQ cols+48(FP), AX
	CMPQ AX, $1
	JEQ  t41

	// 4×3
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ  CX, CX
	JZ     h43

l43:
	VMOVUPS     (DX), Y12
	VMOVUPS     (DX)(R9*1), Y13
	VMOVUPS     (DX)(R9*2), Y14
	VMOVUPS     (SI), Y15
	VFMADD231PS Y12, Y15, Y0
	VFMADD231PS Y13, Y15, Y1
	VFMADD231PS Y14, Y15, Y2
	VMOVUPS     (SI)(R8*1), Y15
	VFMADD231PS Y12, Y15, Y3
	VFMADD231PS Y13, Y15, Y4
	VFMADD231PS Y14, Y15, Y5
	VMOVUPS     (SI)(R8*2), Y15
	VFMADD231PS Y12, Y15, Y6
	VFMADD231PS Y13, Y15, Y7
	VFMADD231PS Y14, Y15, Y8
	VMOVUPS     (SI)(R10*1), Y15
	VFMADD231PS Y12, Y15, Y9
	VFMADD231PS Y13, Y15, Y10
	VFMADD231PS Y14, Y15, Y11
	ADDQ        $32, SI
	ADDQ        $32, DX
	DECQ        CX
	JNZ         l43

h43:
	HSUMPS(Y0, X0, X15)
	HSUMPS(Y1, X1, X15)
	HSUMPS(Y2, X2, X15)
	HSUMPS(Y3, X3, X15)
	HSUMPS(Y4, X4, X15)
	HSUMPS(Y5, X5, X15)
	HSUMPS(Y6, X6, X15)
	HSUMPS(Y7, X7, X15)
	HSUMPS(Y8, X8, X15)
	HSUMPS(Y9, X9, X15)
	HSUMPS(Y10, X10, X15)
	HSUMPS(Y11, X11, X15)

r43:
	TESTQ       BX, BX
	JZ          s43
	VMOVSS      (DX), X12
	VMOVSS      (DX)(R9*1), X13
	VMOVSS      (DX)(R9*2), X14
	VMOVSS      (SI), X15
	VFMADD231SS X12, X15, X0
	VFMADD231SS X13, X15, X1
	VFMADD231SS X14, X15, X2
	VMOVSS      (SI)(R8*1), X15
	VFMADD231SS X12, X15, X3
	VFMADD231SS X13, X15, X4
	VFMADD231SS X14, X15, X5
	VMOVSS      (SI)(R8*2), X15
	VFMADD231SS X12, X15, X6
	VFMADD231SS X13, X15, X7
	VFMADD231SS X14, X15, X8
	VMOVSS      (SI)(R10*1), X15
	VFMADD231SS X12, X15, X9
	VFMADD231SS X13, X15, X10
	VFMADD231SS X14, X15, X11
	ADDQ        $4, SI
	ADDQ        $4, DX
	DECQ        BX
	JMP         r43

s43:
	VMOVSS X0, 0(DI)
	VMOVSS X3, 4(DI)
	VMOVSS X6, 8(DI)
	VMOVSS X9, 12(DI)
	VMOVSS X1, 16(DI)
	VMOVSS X4, 20(DI)
	VMOVSS X7, 24(DI)
	VMOVSS X10, 28(DI)
	VMOVSS X2, 32(DI)
	VMOVSS X5, 36(DI)
	VMOVSS X8, 40(DI)
	VMOVSS X11, 44(DI)
	VZEROUPPER
	RET

	// 4×1
t41:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ  CX, CX
	JZ     h41

l41:
	VMOVUPS     (DX), Y12
	VMOVUPS     (SI), Y15
	VFMADD231PS Y12, Y15, Y0
	VMOVUPS     (SI)(R8*1), Y15
	VFMADD231PS Y12, Y15, Y1
	VMOVUPS     (SI)(R8*2), Y15
	VFMADD231PS Y12, Y15, Y2
	VMOVUPS     (SI)(R10*1), Y15
	VFMADD231PS Y12, Y15, Y3
	ADDQ        $32, SI
	ADDQ        $32, DX
	DECQ        CX
	JNZ         l41

h41:
	HSUMPS(Y0, X0, X15)
	HSUMPS(Y1, X1, X15)
	HSUMPS(Y2, X2, X15)
	HSUMPS(Y3, X3, X15)

r41:
	TESTQ       BX, BX
	JZ          s41
	VMOVSS      (DX), X12
	VMOVSS      (SI), X15
	VFMADD231SS X12, X15, X0
	VMOVSS      (SI)(R8*1), X15
	VFMADD231SS X12, X15, X1
	VMOVSS      (SI)(R8*2), X15
	VFMADD231SS X12, X15, X2
	VMOVSS      (SI)(R10*1), X15
	VFMADD231SS X12, X15, X3
	ADDQ        $4, SI
	ADDQ        $4, DX
	DECQ        BX
	JMP         r41

s41:
	VMOVSS X0, 0(DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	VZEROUPPER
	RET

	// 1×1
t11:
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JZ     h11

l11:
	VMOVUPS     (DX), Y12
	VFMADD231PS (SI), Y12, Y0
	ADDQ        $32, SI
	ADDQ        $32, DX
	DECQ        CX
	JNZ         l11

h11:
	HSUMPS(Y0, X0, X15)

r11:
	TESTQ       BX, BX
	JZ          s11
	VMOVSS      (DX), X12
	VFMADD231SS (SI), X12, X0
	ADDQ        $4, SI
	ADDQ        $4, DX
	DECQ        BX
	JMP         r11

s11:
	VMOVSS X0, 0(DI)
	VZEROUPPER
	RET

// NIBBLESUMS sets Y6 to the eight int32 lane sums of one block: its 16
// bytes of nibbles at W widened to words as they are, 0..15 (the low
// nibbles elements 0..15, the high ones 16..31; Y14 holds 0x000f words),
// times the 16-bit activations at X (elements 0..15) and X32 (16..31),
// lane i summing elements 2i, 2i+1, 16+2i and 17+2i; Y7 is scratch.
// q4_k's sub-blocks (Q4KSUB) and, with the −8 as offsets, q4_0's blocks
// (Q4ROW1) in the AVX2 one-row kernels.
#define NIBBLESUMS(W, X, X32) \
	VPMOVZXBW    W, Y6 \
	VPSRLW       $4, Y6, Y7 \
	VPAND        Y14, Y6, Y6 \
	VPMADDWD     X, Y6, Y6 \
	VPMADDWD     X32, Y7, Y7 \
	VPADDD       Y7, Y6, Y6

// Q4KSUB is one sub-block of dotQ4_Kx1NAVX2's super-block (nibbles at WOFF(SI),
// activations at XOFF(DX), its xd·sc at SOFF(SP)), added into Y3.
#define Q4KSUB(WOFF, XOFF, SOFF) \
	NIBBLESUMS(WOFF(SI), XOFF(DX), XOFF+32(DX)) \
	VCVTDQ2PS    Y6, Y6 \
	VBROADCASTSS SOFF(SP), Y8 \
	VMULPS       Y8, Y6, Y6 \
	VADDPS       Y6, Y3, Y3

// func dotQ4_Kx1NAVX2(out *float32, dm, sc, mn, qs *byte, xd, xg *float32, xq *int16, nb, rows int)
//
// q4_k rows (vec.DotQ4_K, and rows consecutive rows in one call for
// vec.DotQ4_KRows): per super-block its eight sub-blocks' xd·sc at 0(SP),
// each sub-block's nibbles widened (low: elements 0..15, high: 16..31)
// and multiplied by the activations, its eight lane sums converted,
// scaled and added into the super-block's sums Y3 in order (Q4KSUB); then
// d·Y3 into the row's sums Y0 and dmin·(mn·g) into the minimums' Y1;
// hsum8 of each and their difference. A row's super-block scales,
// sub-block scales, minimums and nibbles end where the next row's begin,
// so only the activations' pointers go back to their start at each row.
// The nibbles are asked for PFDIST bytes ahead, two cache lines a
// super-block. The lanes and order are dotQ4_KGo's.
TEXT ·dotQ4_Kx1NAVX2(SB), NOSPLIT, $32-80
	MOVQ         out+0(FP), DI
	MOVQ         dm+8(FP), R8
	MOVQ         sc+16(FP), R11
	MOVQ         mn+24(FP), R12
	MOVQ         qs+32(FP), SI
	MOVQ         rows+72(FP), R13
	MOVL         $0x000f000f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14

rowk:
	MOVQ   xd+40(FP), R9
	MOVQ   xg+48(FP), R10
	MOVQ   xq+56(FP), DX
	MOVQ   nb+64(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1

superk:
	PREFETCHT0 PFDIST(SI)
	PREFETCHT0 PFDIST+64(SI)
	VPMOVZXBD  (R11), Y2
	VCVTDQ2PS  Y2, Y2
	VMULPS     (R9), Y2, Y2
	VMOVUPS    Y2, 0(SP)
	VXORPS     Y3, Y3, Y3
	Q4KSUB(0, 0, 0)
	Q4KSUB(16, 64, 4)
	Q4KSUB(32, 128, 8)
	Q4KSUB(48, 192, 12)
	Q4KSUB(64, 256, 16)
	Q4KSUB(80, 320, 20)
	Q4KSUB(96, 384, 24)
	Q4KSUB(112, 448, 28)
	ADDQ       $128, SI
	ADDQ       $512, DX

	MOVWLZX      (R8), AX
	VMOVD        AX, X8
	VCVTPH2PS    X8, X8
	VBROADCASTSS X8, Y8
	VMULPS       Y8, Y3, Y3
	VADDPS       Y3, Y0, Y0
	VPMOVZXBD    (R12), Y2
	VCVTDQ2PS    Y2, Y2
	VMULPS       (R10), Y2, Y2
	MOVWLZX      2(R8), AX
	VMOVD        AX, X8
	VCVTPH2PS    X8, X8
	VBROADCASTSS X8, Y8
	VMULPS       Y8, Y2, Y2
	VADDPS       Y2, Y1, Y1
	ADDQ         $4, R8
	ADDQ         $8, R11
	ADDQ         $8, R12
	ADDQ         $32, R9
	ADDQ         $32, R10
	DECQ         CX
	JNZ          superk

	HSUMPS(Y0, X0, X6)
	HSUMPS(Y1, X1, X6)
	VSUBSS X1, X0, X0
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   R13
	JNZ    rowk
	VZEROUPPER
	RET

// q4kwordmask is sixteen 0x000f words: the low nibble of each widened
// byte.
DATA q4kwordmask<>+0(SB)/8, $0x000f000f000f000f
DATA q4kwordmask<>+8(SB)/8, $0x000f000f000f000f
DATA q4kwordmask<>+16(SB)/8, $0x000f000f000f000f
DATA q4kwordmask<>+24(SB)/8, $0x000f000f000f000f
GLOBL q4kwordmask<>(SB), RODATA|NOPTR, $32

// Q4KTTOK is one token of a sub-block of dotQ4_Kx2x4AVX2: its activations
// at XLO and XHI (elements 0..15 and 16..31) against both rows' widened
// nibbles (Y8, Y9 row 0; Y10, Y11 row 1), each row's lane sums converted,
// scaled by its xd·sc at F0 or F1 and added into ACC0 or ACC1: the lanes
// and order of dotQ4_Kx1NAVX2's Q4KSUB (NIBBLESUMS, then the scale).
#define Q4KTTOK(XLO, XHI, F0, F1, ACC0, ACC1) \
	VMOVDQU      XLO, Y12 \
	VMOVDQU      XHI, Y13 \
	VPMADDWD     Y12, Y8, Y14 \
	VPMADDWD     Y13, Y9, Y15 \
	VPADDD       Y15, Y14, Y14 \
	VCVTDQ2PS    Y14, Y14 \
	VBROADCASTSS F0, Y15 \
	VMULPS       Y15, Y14, Y14 \
	VADDPS       Y14, ACC0, ACC0 \
	VPMADDWD     Y12, Y10, Y14 \
	VPMADDWD     Y13, Y11, Y15 \
	VPADDD       Y15, Y14, Y14 \
	VCVTDQ2PS    Y14, Y14 \
	VBROADCASTSS F1, Y15 \
	VMULPS       Y15, Y14, Y14 \
	VADDPS       Y14, ACC1, ACC1

// Q4KTUNPACK widens both rows' nibbles of the sub-block at WOFF (16s)
// once for the tile's tokens: Y8, Y9 row 0's elements 0..15 and 16..31,
// Y10, Y11 row 1's.
#define Q4KTUNPACK(WOFF) \
	VPMOVZXBW WOFF(SI), Y8 \
	VPSRLW    $4, Y8, Y9 \
	VPAND     q4kwordmask<>(SB), Y8, Y8 \
	VPMOVZXBW WOFF(SI)(R11*1), Y10 \
	VPSRLW    $4, Y10, Y11 \
	VPAND     q4kwordmask<>(SB), Y10, Y10

// Q4KTTn(XOFF, SOFF) runs tokens 0..n−1 of the sub-block whose
// activations are at XOFF (64s) and xd·sc at SOFF (4s) through Q4KTTOK,
// token t into Y(t) (row 0) and Y(4+t) (row 1). Token t's activations are
// at BX + t·R13 (token 3's at R15), its xd·sc at 32t and 128 + 32t.
#define Q4KTT1(XOFF, SOFF) \
	Q4KTTOK(XOFF(BX), XOFF+32(BX), SOFF(SP), SOFF+128(SP), Y0, Y4)
#define Q4KTT2(XOFF, SOFF) \
	Q4KTT1(XOFF, SOFF) \
	Q4KTTOK(XOFF(BX)(R13*1), XOFF+32(BX)(R13*1), SOFF+32(SP), SOFF+160(SP), Y1, Y5)
#define Q4KTT3(XOFF, SOFF) \
	Q4KTT2(XOFF, SOFF) \
	Q4KTTOK(XOFF(BX)(R13*2), XOFF+32(BX)(R13*2), SOFF+64(SP), SOFF+192(SP), Y2, Y6)
#define Q4KTT4(XOFF, SOFF) \
	Q4KTT3(XOFF, SOFF) \
	Q4KTTOK(XOFF(R15), XOFF+32(R15), SOFF+96(SP), SOFF+224(SP), Y3, Y7)

// Q4KTSUPERn is the super-block's eight sub-blocks for n tokens.
#define Q4KTSUPER(TOKS) \
	Q4KTUNPACK(0) \
	TOKS(0, 0) \
	Q4KTUNPACK(16) \
	TOKS(64, 4) \
	Q4KTUNPACK(32) \
	TOKS(128, 8) \
	Q4KTUNPACK(48) \
	TOKS(192, 12) \
	Q4KTUNPACK(64) \
	TOKS(256, 16) \
	Q4KTUNPACK(80) \
	TOKS(320, 20) \
	Q4KTUNPACK(96) \
	TOKS(384, 24) \
	Q4KTUNPACK(112) \
	TOKS(448, 28)

// Q4KTF stores a row's xd·sc for one token, float32(xd·sc) as the
// one-row kernel makes them, from the row's eight scales as floats in Y8
// and the token's eight xd at XD, at T of the frame.
#define Q4KTF(XD, T) \
	VMULPS  XD, Y8, Y9 \
	VMOVUPS Y9, T(SP)

// Q4KTFn(T0) writes a row's table (at T0 + 32t) for tokens 0..n−1, token
// t's xd at AX + t·CX (token 3's at R15 + CX).
#define Q4KTF1(T0) \
	Q4KTF((AX), T0)
#define Q4KTF2(T0) \
	Q4KTF1(T0) \
	Q4KTF((AX)(CX*1), T0+32)
#define Q4KTF3(T0) \
	Q4KTF2(T0) \
	Q4KTF((AX)(CX*2), T0+64)
#define Q4KTF4(T0) \
	Q4KTF3(T0) \
	Q4KTF((R15)(CX*1), T0+96)

// Q4KTFACTORS writes both rows' xd·sc tables for the super-block through
// FACS (Q4KTFn), from the scales at (R8) and (R8)(R9*1).
#define Q4KTFACTORS(FACS) \
	LEAQ      (AX)(CX*2), R15 \
	VPMOVZXBD (R8), Y8 \
	VCVTDQ2PS Y8, Y8 \
	FACS(0) \
	VPMOVZXBD (R8)(R9*1), Y8 \
	VCVTDQ2PS Y8, Y8 \
	FACS(128)

// Q4KTDM sets Y8 and Y9 to a row's d and dmin from D and DMIN (f16),
// and Y10 to its eight minimums from MN as floats.
#define Q4KTDM(D, DMIN, MN) \
	MOVWLZX      D, R14 \
	VMOVD        R14, X8 \
	VCVTPH2PS    X8, X8 \
	VBROADCASTSS X8, Y8 \
	MOVWLZX      DMIN, R14 \
	VMOVD        R14, X9 \
	VCVTPH2PS    X9, X9 \
	VBROADCASTSS X9, Y9 \
	VPMOVZXBD    MN, Y10 \
	VCVTDQ2PS    Y10, Y10

// Q4KTOUT adds one output's super-block into its sums in the frame, as
// the one-row kernel does: acc += d·sq at A, accm += dmin·(mn·g) at
// A+256 (sq in SQ, g at G).
#define Q4KTOUT(SQ, G, A) \
	VMULPS  Y8, SQ, SQ \
	VADDPS  A(SP), SQ, SQ \
	VMOVUPS SQ, A(SP) \
	VMULPS  G, Y10, Y11 \
	VMULPS  Y9, Y11, Y11 \
	VADDPS  A+256(SP), Y11, Y11 \
	VMOVUPS Y11, A+256(SP)

// Q4KTOn(S, A) is Q4KTOUT for tokens 0..n−1 of a row: sq in Y(S+t), sums
// at A + 32t, g at DX + t·CX (token 3's at R15 + CX).
#define Q4KTO1(S0, S1, S2, S3, A) \
	Q4KTOUT(S0, (DX), A)
#define Q4KTO2(S0, S1, S2, S3, A) \
	Q4KTO1(S0, S1, S2, S3, A) \
	Q4KTOUT(S1, (DX)(CX*1), A+32)
#define Q4KTO3(S0, S1, S2, S3, A) \
	Q4KTO2(S0, S1, S2, S3, A) \
	Q4KTOUT(S2, (DX)(CX*2), A+64)
#define Q4KTO4(S0, S1, S2, S3, A) \
	Q4KTO3(S0, S1, S2, S3, A) \
	Q4KTOUT(S3, (R15)(CX*1), A+96)

// Q4KTSCALE adds both rows' super-block into the outputs' sums (d·sq at
// 256 + 32o, dmin·mn·g at 512 + 32o, o = 4r + t) through OUTS (Q4KTOn).
#define Q4KTSCALE(OUTS) \
	LEAQ (DX)(CX*2), R15 \
	Q4KTDM((DI), 2(DI), (R10)) \
	OUTS(Y0, Y1, Y2, Y3, 256) \
	Q4KTDM((DI)(R12*1), 2(DI)(R12*1), (R10)(R9*1)) \
	OUTS(Y4, Y5, Y6, Y7, 384)

// Q4KTADVANCE steps every pointer one super-block on: the rows' nibbles,
// scales, minimums and d/dmin, the tokens' xd, g and activations.
#define Q4KTADVANCE \
	ADDQ $128, SI \
	ADDQ $8, R8 \
	ADDQ $8, R10 \
	ADDQ $4, DI \
	ADDQ $32, AX \
	ADDQ $32, DX \
	ADDQ $512, BX

// Q4KTRESULT stores the output whose sums are at A (d·sq) and A+256
// (dmin·mn·g) to DST: hsum8 of the first less hsum8 of the second, as the
// one-row kernel ends a row; then zeroes both sums for the next pair.
#define Q4KTRESULT(A, DST) \
	VMOVUPS A(SP), Y0 \
	HSUMPS(Y0, X0, X2) \
	VMOVUPS A+256(SP), Y1 \
	HSUMPS(Y1, X1, X2) \
	VSUBSS  X1, X0, X0 \
	VMOVSS  X0, DST \
	VXORPS  Y0, Y0, Y0 \
	VMOVUPS Y0, A(SP) \
	VMOVUPS Y0, A+256(SP)

// Q4KTRn stores tokens 0..n−1's two outputs of the pair: row r of token
// t to dst + t·stride + 4r (DI = dst, R15 = stride in bytes, R14 = DI +
// 2·stride).
#define Q4KTR1 \
	Q4KTRESULT(256, (DI)) \
	Q4KTRESULT(384, 4(DI))
#define Q4KTR2 \
	Q4KTR1 \
	Q4KTRESULT(288, (DI)(R15*1)) \
	Q4KTRESULT(416, 4(DI)(R15*1))
#define Q4KTR3 \
	Q4KTR2 \
	Q4KTRESULT(320, (R14)) \
	Q4KTRESULT(448, 4(R14))
#define Q4KTR4 \
	Q4KTR3 \
	Q4KTRESULT(352, (R14)(R15*1)) \
	Q4KTRESULT(480, 4(R14)(R15*1))

// Q4KTSTEP is one super-block for n tokens (FACS Q4KTFn, TOKS Q4KTTn,
// OUTS Q4KTOn), asking for both rows' nibbles PFDIST bytes ahead, as the
// one-row kernel does: an expert's first tokens read its rows from memory.
#define Q4KTSTEP(FACS, TOKS, OUTS) \
	PREFETCHT0 PFDIST(SI) \
	PREFETCHT0 PFDIST+64(SI) \
	PREFETCHT0 PFDIST(SI)(R11*1) \
	PREFETCHT0 PFDIST+64(SI)(R11*1) \
	Q4KTFACTORS(FACS) \
	LEAQ (BX)(R13*2), R15 \
	ADDQ R13, R15 \
	ZERO8 \
	Q4KTSUPER(TOKS) \
	Q4KTSCALE(OUTS) \
	Q4KTADVANCE

// func dotQ4_Kx2x4AVX2(dst *float32, stride int, dm *byte, sdm int, sc, mn *byte, ssc int, qs *byte, sqs int, xd, xg *float32, xq *int16, xs, n, nt, pairs int)
//
// The q4_k 2×n tile (1 ≤ nt ≤ 4 tokens) over pairs pairs of weight rows:
// for the pair of rows r, r+1 (r = 2p) and each activation row t < nt,
// dst[t·stride + r] and dst[t·stride + r + 1] (stride in bytes) are
// DotQ4_K of the weight row and the activation row, each with the bits of
// dotQ4_Kx1NAVX2 (and of dotQ4_Kx2x4Go), over n sub-blocks (whole
// super-blocks). Each sub-block's nibbles are widened once for the tokens
// and each token's activations loaded once for the two rows, where the
// one-row kernel for each output widened them per token and loaded them
// per row. One copy of the loops per nt (the macros' n), chosen once. The
// frame holds the super-block's xd·sc table (0..255: row r, token t,
// sub-block s at 128r + 32t + 4s), the outputs' lane sums across
// super-blocks (d·sq at 256 + 32o, dmin·mn·g at 512 + 32o, o = 4r + t)
// and the loop state from 768 on: super-blocks left, pairs left, the
// pair's dm, sc, mn and qs, dst.
TEXT ·dotQ4_Kx2x4AVX2(SB), $824-128

// (Defined after the TEXT line: go vet's asmdecl checks frame and
// argument offsets against the function whose text a line falls in.)
// Q4KTPAIR loads the pair's row pointers (from the frame) and the
// tokens' (from the arguments) and the super-block count.
#define Q4KTPAIR \
	MOVQ 784(SP), DI \
	MOVQ 792(SP), R8 \
	MOVQ 800(SP), R10 \
	MOVQ 808(SP), SI \
	MOVQ sdm+24(FP), R12 \
	MOVQ ssc+48(FP), R9 \
	MOVQ sqs+64(FP), R11 \
	MOVQ xd+72(FP), AX \
	MOVQ xg+80(FP), DX \
	MOVQ xq+88(FP), BX \
	MOVQ xs+96(FP), CX \
	MOVQ CX, R13 \
	SHLQ $2, CX \
	SHLQ $6, R13 \
	MOVQ n+104(FP), R14 \
	SHRQ $3, R14 \
	MOVQ R14, 768(SP)

// Q4KTSTORE stores the pair's outputs through RESULTS (Q4KTRn), then
// steps dst and the row pointers one pair on.
#define Q4KTSTORE(RESULTS) \
	MOVQ 816(SP), DI \
	MOVQ stride+8(FP), R15 \
	LEAQ (DI)(R15*2), R14 \
	RESULTS \
	ADDQ $8, 816(SP) \
	MOVQ sdm+24(FP), AX \
	SHLQ $1, AX \
	ADDQ AX, 784(SP) \
	MOVQ ssc+48(FP), AX \
	SHLQ $1, AX \
	ADDQ AX, 792(SP) \
	ADDQ AX, 800(SP) \
	MOVQ sqs+64(FP), AX \
	SHLQ $1, AX \
	ADDQ AX, 808(SP)

	MOVQ    dm+16(FP), DI
	MOVQ    sc+32(FP), R8
	MOVQ    mn+40(FP), R10
	MOVQ    qs+56(FP), SI
	MOVQ    DI, 784(SP)
	MOVQ    R8, 792(SP)
	MOVQ    R10, 800(SP)
	MOVQ    SI, 808(SP)
	MOVQ    dst+0(FP), AX
	MOVQ    AX, 816(SP)
	MOVQ    pairs+120(FP), AX
	MOVQ    AX, 776(SP)
	VXORPS  Y0, Y0, Y0
	VMOVUPS Y0, 256(SP)
	VMOVUPS Y0, 288(SP)
	VMOVUPS Y0, 320(SP)
	VMOVUPS Y0, 352(SP)
	VMOVUPS Y0, 384(SP)
	VMOVUPS Y0, 416(SP)
	VMOVUPS Y0, 448(SP)
	VMOVUPS Y0, 480(SP)
	VMOVUPS Y0, 512(SP)
	VMOVUPS Y0, 544(SP)
	VMOVUPS Y0, 576(SP)
	VMOVUPS Y0, 608(SP)
	VMOVUPS Y0, 640(SP)
	VMOVUPS Y0, 672(SP)
	VMOVUPS Y0, 704(SP)
	VMOVUPS Y0, 736(SP)
	MOVQ    nt+112(FP), AX
	CMPQ    AX, $3
	JEQ     pair3
	CMPQ    AX, $2
	JEQ     pair2
	CMPQ    AX, $1
	JEQ     pair1

pair4:
	Q4KTPAIR

super4:
	Q4KTSTEP(Q4KTF4, Q4KTT4, Q4KTO4)
	DECQ 768(SP)
	JNZ  super4
	Q4KTSTORE(Q4KTR4)
	DECQ 776(SP)
	JNZ  pair4
	VZEROUPPER
	RET

pair3:
	Q4KTPAIR

super3:
	Q4KTSTEP(Q4KTF3, Q4KTT3, Q4KTO3)
	DECQ 768(SP)
	JNZ  super3
	Q4KTSTORE(Q4KTR3)
	DECQ 776(SP)
	JNZ  pair3
	VZEROUPPER
	RET

pair2:
	Q4KTPAIR

super2:
	Q4KTSTEP(Q4KTF2, Q4KTT2, Q4KTO2)
	DECQ 768(SP)
	JNZ  super2
	Q4KTSTORE(Q4KTR2)
	DECQ 776(SP)
	JNZ  pair2
	VZEROUPPER
	RET

pair1:
	Q4KTPAIR

super1:
	Q4KTSTEP(Q4KTF1, Q4KTT1, Q4KTO1)
	DECQ 768(SP)
	JNZ  super1
	Q4KTSTORE(Q4KTR1)
	DECQ 776(SP)
	JNZ  pair1
	VZEROUPPER
	RET

// SCORES8SUM sets Y0 to hsum8 of each of Y0..Y7 (rows 0..7 in order),
// each with HSUMPS's tree, ((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7)), so the
// eight scores have the one-row loop's bits: the halves of two rows are
// added in one VADDPS (x_i = a_i+a_{i+4}), then x0+x2 and x1+x3 for four
// rows at once, then their sums, leaving rows 0,2,4,6 | 1,3,5,7, which
// Y15 (scoresidx8) puts in order. Y8..Y14 are scratch.
#define SCORES8SUM \
	HALVES2(Y0, Y1) \
	HALVES2(Y2, Y3) \
	HALVES2(Y4, Y5) \
	HALVES2(Y6, Y7) \
	PAIRS2(Y0, Y2, $0x44, $0xee) \
	PAIRS2(Y4, Y6, $0x44, $0xee) \
	PAIRS2(Y0, Y4, $0x88, $0xdd) \
	VPERMPS Y0, Y15, Y0

// HALVES2 sets A to A's halves added lane by lane in its low half and B's
// in its high half (Y8, Y9 scratch).
#define HALVES2(A, B) \
	VPERM2F128 $0x20, B, A, Y8 \
	VPERM2F128 $0x31, B, A, Y9 \
	VADDPS     Y9, Y8, A

// PAIRS2 sets A to the sum of A and B's lanes as the two VSHUFPS
// selections LO and HI pick them, within each half (Y8, Y9 scratch).
#define PAIRS2(A, B, LO, HI) \
	VSHUFPS LO, B, A, Y8 \
	VSHUFPS HI, B, A, Y9 \
	VADDPS  Y9, Y8, A

// FMA8ROWS adds Y8 times the eight rows' chunks into Y0..Y7: rows 0, 1, 2
// at P0, P0+R8, P0+2·R8, rows 3..5 from P3, rows 6, 7 from P6.
#define FMA8ROWS(P0, P3, P6) \
	VFMADD231PS (P0), Y8, Y0 \
	VFMADD231PS (P0)(R8*1), Y8, Y1 \
	VFMADD231PS (P0)(R8*2), Y8, Y2 \
	VFMADD231PS (P3), Y8, Y3 \
	VFMADD231PS (P3)(R8*1), Y8, Y4 \
	VFMADD231PS (P3)(R8*2), Y8, Y5 \
	VFMADD231PS (P6), Y8, Y6 \
	VFMADD231PS (P6)(R8*1), Y8, Y7

// FMA8COLS adds Y8 times the 64 values at P into Y0..Y7.
#define FMA8COLS(P) \
	VFMADD231PS (P), Y8, Y0 \
	VFMADD231PS 32(P), Y8, Y1 \
	VFMADD231PS 64(P), Y8, Y2 \
	VFMADD231PS 96(P), Y8, Y3 \
	VFMADD231PS 128(P), Y8, Y4 \
	VFMADD231PS 160(P), Y8, Y5 \
	VFMADD231PS 192(P), Y8, Y6 \
	VFMADD231PS 224(P), Y8, Y7

// LOAD8 and STORE8 move the 64 values at P to and from Y0..Y7.
#define LOAD8(P) \
	VMOVUPS (P), Y0 \
	VMOVUPS 32(P), Y1 \
	VMOVUPS 64(P), Y2 \
	VMOVUPS 96(P), Y3 \
	VMOVUPS 128(P), Y4 \
	VMOVUPS 160(P), Y5 \
	VMOVUPS 192(P), Y6 \
	VMOVUPS 224(P), Y7

#define STORE8(P) \
	VMOVUPS Y0, (P) \
	VMOVUPS Y1, 32(P) \
	VMOVUPS Y2, 64(P) \
	VMOVUPS Y3, 96(P) \
	VMOVUPS Y4, 128(P) \
	VMOVUPS Y5, 160(P) \
	VMOVUPS Y6, 192(P) \
	VMOVUPS Y7, 224(P)

// PF4ROWS asks for the 256 bytes at P four rows (R8 bytes each) ahead.
#define PF4ROWS(P) \
	PREFETCHT0 (P)(R8*4) \
	PREFETCHT0 64(P)(R8*4) \
	PREFETCHT0 128(P)(R8*4) \
	PREFETCHT0 192(P)(R8*4)

// scoresidx8 is the VPERMPS indices that put SCORES8SUM's rows 0,2,4,6 |
// 1,3,5,7 in order.
DATA scoresidx8<>+0(SB)/8, $0x0000000400000000
DATA scoresidx8<>+8(SB)/8, $0x0000000500000001
DATA scoresidx8<>+16(SB)/8, $0x0000000600000002
DATA scoresidx8<>+24(SB)/8, $0x0000000700000003
GLOBL scoresidx8<>(SB), RODATA|NOPTR, $32

// func scoresAVX2(dst, q, k *float32, stride, n, chunks int)
//
// Per cache row (stride bytes apart): one 8-lane accumulator of fused
// multiply-adds over the chunks, then hsum8. Eight rows go at a time, in
// eight accumulators, each chunk of q loaded once for them, and
// SCORES8SUM adds up all eight with hsum8's tree: one row's chain of four-
// cycle additions left the row at a time waiting on it (BenchmarkScores,
// 1000 rows: 3.9–4.3 µs before, 2.3–2.8 after). The last n%8 rows go one
// at a time. Each of those chunks asks for the same chunk four rows ahead:
// a head's rows are a page apart when the cache rows are 1024 floats
// (OLMoE's), a stride the hardware prefetcher does not follow across
// pages, and every row was a miss.
TEXT ·scoresAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ stride+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ chunks+40(FP), R9
	VMOVDQU scoresidx8<>(SB), Y15

rows8:
	// Eight rows at a time: each chunk of q loaded once, one accumulator
	// per row (eight independent chains instead of one), then SCORES8SUM.
	CMPQ CX, $8
	JL   row
	ZERO8
	MOVQ   SI, R10
	LEAQ   (DX)(R8*2), R12
	ADDQ   R8, R12        // row 3
	LEAQ   (R12)(R8*2), R13
	ADDQ   R8, R13        // row 6
	MOVQ   DX, R11
	MOVQ   R9, BX

chunk8:
	VMOVUPS     (R10), Y8
	FMA8ROWS(R11, R12, R13)
	ADDQ        $32, R10
	ADDQ        $32, R11
	ADDQ        $32, R12
	ADDQ        $32, R13
	DECQ        BX
	JNZ         chunk8
	SCORES8SUM
	VMOVUPS     Y0, (DI)
	ADDQ        $32, DI
	LEAQ        (DX)(R8*8), DX
	SUBQ        $8, CX
	JNZ         rows8
	VZEROUPPER
	RET

row:
	TESTQ CX, CX
	JZ    done
	VXORPS Y0, Y0, Y0
	MOVQ   SI, R10
	MOVQ   DX, R11
	MOVQ   R9, BX

chunk:
	PREFETCHT0  (R11)(R8*4)
	VMOVUPS     (R10), Y1
	VFMADD231PS (R11), Y1, Y0
	ADDQ        $32, R10
	ADDQ        $32, R11
	DECQ        BX
	JNZ         chunk
	HSUMPS(Y0, X0, X1)
	VMOVSS      X0, (DI)
	ADDQ        $4, DI
	ADDQ        R8, DX
	DECQ        CX
	JNZ         row

done:
	VZEROUPPER
	RET


// func weightedSumAVX2(o, a, v *float32, stride, n, chunks int)
//
// o is built 64 values (eight accumulators) at a time, then 32, then 8,
// each pass running over all the rows: o[j] = fma(a[i], v[i][j], o[j]) in
// order of i, from zero — what a loop of Axpy gives. Each row asks for its
// part of the row four ahead, as scoresAVX2 does.
TEXT ·weightedSumAVX2(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ stride+24(FP), R8
	MOVQ chunks+40(FP), R9

eight:
	// 64 values at a time: eight chains of fused multiply-adds, where
	// four left each row waiting on the previous row's (a head of 64
	// values is one pass over the rows instead of two).
	CMPQ   R9, $8
	JL     four
	ZERO8
	MOVQ   SI, R10
	MOVQ   DX, R11
	MOVQ   n+32(FP), CX

eight_row:
	PF4ROWS(R11)
	VBROADCASTSS (R10), Y8
	FMA8COLS(R11)
	ADDQ         $4, R10
	ADDQ         R8, R11
	DECQ         CX
	JNZ          eight_row
	STORE8(DI)
	ADDQ         $256, DI
	ADDQ         $256, DX
	SUBQ         $8, R9
	JMP          eight

four:
	CMPQ   R9, $4
	JL     one
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   SI, R10
	MOVQ   DX, R11
	MOVQ   n+32(FP), CX

four_row:
	PREFETCHT0   (R11)(R8*4)
	PREFETCHT0   64(R11)(R8*4)
	VBROADCASTSS (R10), Y4
	VFMADD231PS  (R11), Y4, Y0
	VFMADD231PS  32(R11), Y4, Y1
	VFMADD231PS  64(R11), Y4, Y2
	VFMADD231PS  96(R11), Y4, Y3
	ADDQ         $4, R10
	ADDQ         R8, R11
	DECQ         CX
	JNZ          four_row
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y1, 32(DI)
	VMOVUPS      Y2, 64(DI)
	VMOVUPS      Y3, 96(DI)
	ADDQ         $128, DI
	ADDQ         $128, DX
	SUBQ         $4, R9
	JMP          four

one:
	TESTQ  R9, R9
	JZ     done
	VXORPS Y0, Y0, Y0
	MOVQ   SI, R10
	MOVQ   DX, R11
	MOVQ   n+32(FP), CX

one_row:
	PREFETCHT0   (R11)(R8*4)
	VBROADCASTSS (R10), Y4
	VFMADD231PS  (R11), Y4, Y0
	ADDQ         $4, R10
	ADDQ         R8, R11
	DECQ         CX
	JNZ          one_row
	VMOVUPS      Y0, (DI)
	ADDQ         $32, DI
	ADDQ         $32, DX
	DECQ         R9
	JMP          one

done:
	VZEROUPPER
	RET

// PF2Q8 asks for the next group of eight q8_0 blocks of a tile's two
// rows (256 bytes each) PFDIST bytes ahead: an expert's few tokens read
// its rows from memory (RATIONALE.md, "The q4_0 prefill tile asks for its
// two rows ahead").
#define PF2Q8 \
	PREFETCHT0 PFDIST(SI) \
	PREFETCHT0 PFDIST+64(SI) \
	PREFETCHT0 PFDIST+128(SI) \
	PREFETCHT0 PFDIST+192(SI) \
	PREFETCHT0 PFDIST(SI)(R11*1) \
	PREFETCHT0 PFDIST+64(SI)(R11*1) \
	PREFETCHT0 PFDIST+128(SI)(R11*1) \
	PREFETCHT0 PFDIST+192(SI)(R11*1)

// func dotQ8_0x2x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, xs, nb int)
TEXT ·dotQ8_0x2x4AVX2(SB), NOSPLIT, $256-72
	TILEPROLOGUE
	TESTQ R14, R14
	JZ    tail

group:
	PF2Q8
	TILESCALES8
	XORQ BX, BX

inner:
	UNPACKQ8
	TILEBLOCK
	ADDQ $32, SI
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
	TILESCALE1
	XORQ  BX, BX
	UNPACKQ8
	TILEBLOCK
	ADDQ  $32, SI
	ADDQ  $2, R8
	ADDQ  $4, R9
	DECQ  CX
	JMP   tail

done:
	TILEEPILOGUE
	RET

// func dotQ4_0x2x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, xs, nb int)
//
// The 2×4 tile in q4_0's order (dotQ4_0x2x4Go): each output has two sets
// of eight lanes, its even blocks' and its odd blocks', each summed in
// block order. The even sets are in the registers, Y(4r+t) as in the q8_0
// tile; with the weights unpacked (Y8..Y11) there are none left for the
// odd sets, which are in the frame past the scale products, aligned to 32
// bytes: output 4r+t's at 32·(4r+t)(R15), added to there (TILEBLOCKODD).
// Blocks go in order, two (even, odd) a loop within a group of eight, then
// the blocks after alternating from an even one; at the end each odd set
// is added onto its even one (hsum16) before TILEEPILOGUE's HSUMPS.
//
// Against the old order's tile (eight lanes per output, all in registers),
// old and new alternating in one process, the median time ratio is 1.02 to
// 1.04 as prefill calls it (64-row blocks, eight tokens at a time, 32 to
// 128 blocks), 1.02 to 1.06 elsewhere (16 to 448 blocks). Measured the
// same way and no faster there: swapping the eight outputs' even and odd
// sets with the frame once per group (one parity's blocks, then the
// other's; 1.02 to 1.06); and slower there: one weight row at a time with
// both sets of its four outputs in registers (0.99 to 1.03 while the four
// tokens' activations stay in L1, but 1.11 to 1.22 as prefill calls it).

// TILEMACM is TILEMAC adding to the lanes in memory at ACC.
#define TILEMACM(WLO, WHI, XQ, XQ32, SC, ACC) \
	VPMADDWD     XQ, WLO, Y12 \
	VPMADDWD     XQ32, WHI, Y13 \
	VPADDD       Y13, Y12, Y12 \
	VCVTDQ2PS    Y12, Y12 \
	VBROADCASTSS SC, Y13 \
	VMULPS       Y13, Y12, Y12 \
	VADDPS       ACC, Y12, Y12 \
	VMOVUPS      Y12, ACC

// TILEBLOCKODD is TILEBLOCK into the odd blocks' lanes at R15.
#define TILEBLOCKODD \
	TILEMACM(Y8, Y9, (DX), 32(DX), 0(SP)(BX*4), 0(R15)) \
	TILEMACM(Y10, Y11, (DX), 32(DX), 128(SP)(BX*4), 128(R15)) \
	TILEMACM(Y8, Y9, (DX)(R12*1), 32(DX)(R12*1), 32(SP)(BX*4), 32(R15)) \
	TILEMACM(Y10, Y11, (DX)(R12*1), 32(DX)(R12*1), 160(SP)(BX*4), 160(R15)) \
	TILEMACM(Y8, Y9, (DX)(R12*2), 32(DX)(R12*2), 64(SP)(BX*4), 64(R15)) \
	TILEMACM(Y10, Y11, (DX)(R12*2), 32(DX)(R12*2), 192(SP)(BX*4), 192(R15)) \
	TILEMACM(Y8, Y9, (DX)(R13*1), 32(DX)(R13*1), 96(SP)(BX*4), 96(R15)) \
	TILEMACM(Y10, Y11, (DX)(R13*1), 32(DX)(R13*1), 224(SP)(BX*4), 224(R15)) \
	ADDQ $64, DX

// func quantizeQ16AVX2(q *int16, d, gs, x *float32, nb int)
//
// Per block: max|x| over four vectors, d = max/32767 and 1/d in scalar
// (as the Go code), x·(1/d) converted with VCVTPS2DQ (round to nearest
// even, the default MXCSR mode), packed to int16 with signed saturation and
// raised to at least −32767; Σq by VPMADDWD against ones, exact in int32.
TEXT ·quantizeQ16AVX2(SB), NOSPLIT, $0-40
	MOVQ         q+0(FP), DI
	MOVQ         d+8(FP), R8
	MOVQ         gs+16(FP), R9
	MOVQ         x+24(FP), SI
	MOVQ         nb+32(FP), CX
	MOVL         $0x7fffffff, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15 // abs mask
	MOVL         $0x80018001, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14 // −32767 words
	MOVL         $0x00010001, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13 // ones
	MOVL         $0x46fffe00, AX // 32767.0
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
	VPERMQ       $0xd8, Y0, Y0
	VPERMQ       $0xd8, Y2, Y2
	VPMAXSW      Y14, Y0, Y0
	VPMAXSW      Y14, Y2, Y2
	VMOVDQU      Y0, (DI)
	VMOVDQU      Y2, 32(DI)
	VPMADDWD     Y13, Y0, Y0
	VPMADDWD     Y13, Y2, Y2
	VPADDD       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xb1, X0, X1
	VPADDD       X1, X0, X0
	VCVTDQ2PS    X0, X0
	VMULSS       X0, X4, X0
	VMOVSS       X4, (R8)
	VMOVSS       X0, (R9)
	ADDQ         $128, SI
	ADDQ         $64, DI
	ADDQ         $4, R8
	ADDQ         $4, R9
	DECQ         CX
	JNZ          block
	VZEROUPPER
	RET

// func dotQ8_0x2x4AVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, xs, nb int)
TEXT ·dotQ8_0x2x4AVX512(SB), NOSPLIT, $0-72
	TILEPROLOGUE
	PAIRCONSTS
	TESTQ R14, R14
	JZ    tail

group:
	PF2Q8
	TILESCALES8Z
	MOVQ $8, BX

inner:
	PAIRQ8((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1))
	TILEBLOCKZ
	ADDQ $32, SI
	DECQ BX
	JNZ  inner
	ADDQ $16, R8
	ADDQ $32, R9
	DECQ R14
	JNZ  group

tail:
	TESTQ CX, CX
	JZ    done
	TILESCALE1Z
	PAIRQ8((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1))
	TILEBLOCKZ
	ADDQ $32, SI
	ADDQ $2, R8
	ADDQ $4, R9
	DECQ CX
	JMP  tail

done:
	TILEEPILOGUEZ
	RET

// The 2×8 tile kernels below (q8_0's; q4_0's was the first, and its 2×n
// tile further down is what is left of it) are the 2×4 tile for eight
// activation rows: each pair of weight blocks, unpacked once (Z8, Z9),
// runs against eight tokens instead of four, which halves the unpacking
// per product (prefill, where the weights stay in cache and the kernel is
// bound by the instructions it issues). Token t's accumulators are Z(t),
// its scale table Z(16+t); tokens 4..7's activations are at BX as tokens
// 0..3's at DX; Z24, Z25 the activation block, Z26, Z27 scratch. Per
// output the lanes and their order are the 2×4 kernel's, so the bits are
// the same.

// TOKT is TILETOKZ with the 2×8 kernel's registers.
#define TOKT(XQ, XQ32, SCTAB, ACC) \
	VBROADCASTI64X4 XQ, Z24 \
	VBROADCASTI64X4 XQ32, Z25 \
	VPMADDWD        Z24, Z8, Z26 \
	VPDPWSSD        Z25, Z9, Z26 \
	VCVTDQ2PS       Z26, Z26 \
	VPERMPS         SCTAB, Z15, Z27 \
	VMULPS          Z27, Z26, Z26 \
	VADDPS          Z26, ACC, ACC

// TILEBLOCK8 runs the unpacked block against the eight tokens through TOK
// (TOKT or TOKD), each token's second activation half HALF bytes after its
// first, then steps the block index and xq by STEP bytes.
#define TILEBLOCK8(TOK, HALF, STEP) \
	TOK((DX), HALF(DX), Z16, Z0) \
	TOK((DX)(R12*1), HALF(DX)(R12*1), Z17, Z1) \
	TOK((DX)(R12*2), HALF(DX)(R12*2), Z18, Z2) \
	TOK((DX)(R13*1), HALF(DX)(R13*1), Z19, Z3) \
	TOK((BX), HALF(BX), Z20, Z4) \
	TOK((BX)(R12*1), HALF(BX)(R12*1), Z21, Z5) \
	TOK((BX)(R12*2), HALF(BX)(R12*2), Z22, Z6) \
	TOK((BX)(R13*1), HALF(BX)(R13*1), Z23, Z7) \
	VPADDD Z11, Z15, Z15 \
	ADDQ   STEP, DX \
	ADDQ   STEP, BX

// TILEBLOCKT is TILEBLOCK8 on the plain layout, each activation half
// broadcast into both halves of a register.
#define TILEBLOCKT TILEBLOCK8(TOKT, 32, $64)

// TILESCALES8TOK sets TAB to the products of the next eight blocks of the
// two rows (Y10, Y27: their scales) and the token whose xd is at AX, then
// steps AX to the next token.
#define TILESCALES8TOK(TABY, TABZ) \
	VMULPS       (AX), Y10, TABY \
	VMULPS       (AX), Y27, Y26 \
	VINSERTF64X4 $1, Y26, TABZ, TABZ \
	ADDQ         DI, AX

#define TILESCALES8T \
	VCVTPH2PS (R8), Y10 \
	VCVTPH2PS (R8)(R10*1), Y27 \
	MOVQ      R9, AX \
	TILESCALES8TOK(Y16, Z16) \
	TILESCALES8TOK(Y17, Z17) \
	TILESCALES8TOK(Y18, Z18) \
	TILESCALES8TOK(Y19, Z19) \
	TILESCALES8TOK(Y20, Z20) \
	TILESCALES8TOK(Y21, Z21) \
	TILESCALES8TOK(Y22, Z22) \
	TILESCALES8TOK(Y23, Z23) \
	VMOVDQA64 Z12, Z15

// TILESCALE1T is TILESCALES8T for one block.
#define TILESCALE1T \
	MOVWLZX   (R8), AX \
	VMOVD     AX, X8 \
	VCVTPH2PS X8, X8 \
	MOVWLZX   (R8)(R10*1), AX \
	VMOVD     AX, X9 \
	VCVTPH2PS X9, X9 \
	MOVQ      R9, AX \
	TILESCALE1TOK(Y16, Z16) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y17, Z17) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y18, Z18) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y19, Z19) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y20, Z20) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y21, Z21) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y22, Z22) \
	ADDQ      DI, AX \
	TILESCALE1TOK(Y23, Z23) \
	VMOVDQA64 Z12, Z15

// HSUM2T is hsum8 of the four eight-lane halves of A and B (a tile's
// two rows for two tokens each) at once: lanes 0, 4, 8 and 12 of R get
// A's low half's sum, A's high half's, B's low's and B's high's, each
// added as HSUMPS adds (lanes i and i+4, then 0+2 and 1+3, then those
// two), so the bits are HSUMPS's; Z23 is scratch.
#define HSUM2T(A, B, R) \
	VSHUFF32X4 $0x88, B, A, R \
	VSHUFF32X4 $0xdd, B, A, Z23 \
	VADDPS     Z23, R, R \
	VPERMILPS  $0x4e, R, Z23 \
	VADDPS     Z23, R, R \
	VPERMILPS  $0xb1, R, Z23 \
	VADDPS     Z23, R, R

// TILESTORE16 stores a 2×8 tile's sixteen outputs: out[t] from the low
// half of Z(t), row 0's, and out[8+t] from its high half, row 1's. The
// sixteen hsum8 run four at a time in 512-bit registers (HSUM2T), and
// three permutes gather the sums for one 64-byte store: 34 operations
// where an extract per token, one HSUMPS and VMOVSS per output and eight
// moves were 128, at the end of every tile (RATIONALE.md, "Row-end sums four rows at a time"). Z16..Z23 are
// scratch.
#define TILESTORE16 \
	MOVQ      out+0(FP), DI \
	HSUM2T(Z0, Z1, Z16) \
	HSUM2T(Z2, Z3, Z17) \
	HSUM2T(Z4, Z5, Z18) \
	HSUM2T(Z6, Z7, Z19) \
	VMOVDQU32 tileidx4<>(SB), Z20 \
	VPERMT2PS Z17, Z20, Z16 \
	VPERMT2PS Z19, Z20, Z18 \
	VMOVDQU32 tileidx8<>(SB), Z21 \
	VPERMT2PS Z18, Z21, Z16 \
	VMOVUPS   Z16, (DI)

// tileidx4: VPERMT2PS indices taking two HSUM2T results (tokens t..t+3:
// row 0 of t in lane 0, row 1 in 4, t+1's in 8 and 12, then t+2's and
// t+3's in the second table) to row 0's four sums then row 1's.
DATA tileidx4<>+0(SB)/8, $0x0000000800000000
DATA tileidx4<>+8(SB)/8, $0x0000001800000010
DATA tileidx4<>+16(SB)/8, $0x0000000c00000004
DATA tileidx4<>+24(SB)/8, $0x0000001c00000014
DATA tileidx4<>+32(SB)/8, $0
DATA tileidx4<>+40(SB)/8, $0
DATA tileidx4<>+48(SB)/8, $0
DATA tileidx4<>+56(SB)/8, $0
GLOBL tileidx4<>(SB), RODATA|NOPTR, $64

// tileidx8: VPERMT2PS indices taking tokens 0..3's and 4..7's (tileidx4's
// results) to row 0's eight sums then row 1's.
DATA tileidx8<>+0(SB)/8, $0x0000000100000000
DATA tileidx8<>+8(SB)/8, $0x0000000300000002
DATA tileidx8<>+16(SB)/8, $0x0000001100000010
DATA tileidx8<>+24(SB)/8, $0x0000001300000012
DATA tileidx8<>+32(SB)/8, $0x0000000500000004
DATA tileidx8<>+40(SB)/8, $0x0000000700000006
DATA tileidx8<>+48(SB)/8, $0x0000001500000014
DATA tileidx8<>+56(SB)/8, $0x0000001700000016
GLOBL tileidx8<>(SB), RODATA|NOPTR, $64

// PAIRQ8T is PAIRQ8 into Z8 (elements 0..15 of both rows) and Z9.
#define PAIRQ8T(W0, W0H, W1, W1H) \
	VMOVDQU     W0, X8 \
	VINSERTI128 $1, W1, Y8, Y8 \
	VPMOVSXBW   Y8, Z8 \
	VMOVDQU     W0H, X9 \
	VINSERTI128 $1, W1H, Y9, Y9 \
	VPMOVSXBW   Y9, Z9

// func dotQ8_0x2x8AVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, xs, nb int)
//
// out[8r+t] for rows r < 2 and tokens t < 8 (token t's blocks at t·xs
// blocks of xd and xq), q8_0 weights (32 bytes per block, PAIRQ8T).
TEXT ·dotQ8_0x2x8AVX512(SB), NOSPLIT, $0-72
	TILEPROLOGUE
	VXORPS Y7, Y7, Y7
	PAIRCONSTS
	LEAQ   (DX)(R12*4), BX
	TESTQ  R14, R14
	JZ     tail

group:
	PF2Q8
	TILESCALES8T
	MOVQ $8, AX

inner:
	PAIRQ8T((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1))
	TILEBLOCKT
	ADDQ $32, SI
	DECQ AX
	JNZ  inner
	ADDQ $16, R8
	ADDQ $32, R9
	DECQ R14
	JNZ  group

tail:
	TESTQ CX, CX
	JZ    done
	TILESCALE1T
	PAIRQ8T((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1))
	TILEBLOCKT
	ADDQ $32, SI
	ADDQ $2, R8
	ADDQ $4, R9
	DECQ CX
	JMP  tail

done:
	TILESTORE16
	VZEROUPPER
	RET

// Q8X4BLOCK is one block of dotQ8_0x4NAVX512's four rows. Its group loop
// asks for the next four rows' cache line of every two blocks (64 bytes
// of q8_0 quants a row) just before them, rather than all sixteen lines of
// the group of eight blocks at its start (PFNEXTQ4's way): sixteen
// prefetches at once left the kernel waiting longer on weights streamed
// from memory (RATIONALE.md, "Exact and fast CPU paths").
#define Q8X4BLOCK \
	VBROADCASTI64X4 (DX), Z4 \
	VBROADCASTI64X4 32(DX), Z5 \
	PAIRQ8((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1)) \
	PAIRMAC(Z9, Z0) \
	PAIRQ8((SI)(R11*2), 16(SI)(R11*2), (SI)(R12*1), 16(SI)(R12*1)) \
	PAIRMAC(Z10, Z1) \
	VPADDD Z11, Z15, Z15 \
	ADDQ   $32, SI \
	ADDQ   $64, DX

// func dotQ8_0x4NAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, nb, groups int)
//
// groups consecutive groups of four rows (row r at wd + r·sd, wq + r·sq),
// out[4g+r] for group g: one call for a whole matrix-vector product, so
// that the Go loop around it does not show in decode's profile. The row
// starts and the group count live at 0, 8 and 16(SP).
TEXT ·dotQ8_0x4NAVX512(SB), NOSPLIT, $24-72
	MOVQ out+0(FP), DI
	MOVQ wd+8(FP), R8
	MOVQ sd+16(FP), R10
	MOVQ wq+24(FP), SI
	MOVQ sq+32(FP), R11
	LEAQ (R10)(R10*2), R13
	LEAQ (R11)(R11*2), R12
	MOVQ R8, 0(SP)
	MOVQ SI, 8(SP)
	MOVQ groups+64(FP), AX
	MOVQ AX, 16(SP)
	PAIRCONSTS

rowgroup:
	MOVQ   0(SP), R8
	MOVQ   8(SP), SI
	MOVQ   xd+40(FP), R9
	MOVQ   xq+48(FP), DX
	MOVQ   nb+56(FP), CX
	MOVQ   CX, R14
	SHRQ   $3, R14
	ANDQ   $7, CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	TESTQ  R14, R14
	JZ     tail

group:
	PFNEXTSCALES
	X4SCALES8Z
	MOVQ $4, BX

inner:
	LEAQ (SI)(R11*4), AX
	PFNEXT4(0)
	Q8X4BLOCK
	Q8X4BLOCK
	DECQ BX
	JNZ  inner
	ADDQ   $16, R8
	ADDQ   $32, R9
	DECQ   R14
	JNZ    group

tail:
	TESTQ CX, CX
	JZ    store
	X4SCALE1Z
	VBROADCASTI64X4 (DX), Z4
	VBROADCASTI64X4 32(DX), Z5
	PAIRQ8((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1))
	PAIRMAC(Z9, Z0)
	PAIRQ8((SI)(R11*2), 16(SI)(R11*2), (SI)(R12*1), 16(SI)(R12*1))
	PAIRMAC(Z10, Z1)
	ADDQ $32, SI
	ADDQ $2, R8
	ADDQ $4, R9
	ADDQ $64, DX
	DECQ CX
	JMP  tail

store:
	VEXTRACTF64X4 $1, Z0, Y2
	VEXTRACTF64X4 $1, Z1, Y3
	HSUMPS(Y0, X0, X6)
	HSUMPS(Y2, X2, X6)
	HSUMPS(Y1, X1, X6)
	HSUMPS(Y3, X3, X6)
	VMOVSS X0, (DI)
	VMOVSS X2, 4(DI)
	VMOVSS X1, 8(DI)
	VMOVSS X3, 12(DI)
	ADDQ   $16, DI
	MOVQ   0(SP), R8
	LEAQ   (R8)(R10*4), R8
	MOVQ   R8, 0(SP)
	MOVQ   8(SP), SI
	LEAQ   (SI)(R11*4), SI
	MOVQ   SI, 8(SP)
	DECQ   16(SP)
	JNZ    rowgroup
	VZEROUPPER
	RET

// HSUM4 is hsum8 of four rows' eight lane sums at once: Y25, Y24, Y23
// and Y22 (rows k..k+3) into the four floats at OUT, with Z23 and
// Z26..Z28 as scratch and IDX holding hsum4idx. The rows go into two
// 512-bit registers, two rows each, for HSUM2T (TILESTORE16's), so each
// row's lanes meet as HSUMPS adds them and the bits are HSUMPS's; the
// four rows' additions run side by side: ten operations and one store
// for four rows, where HSUMPS and VMOVSS are six and a store for each, a
// chain that every row of the one-row kernels (dotQ4_0x1NAVX512,
// dotQ8_0x1NAVX512) ended on.
// With rows of 512 columns (Mixtral's gate, up, attention and head: 16
// blocks, two groups), a copy of the q4_0 kernel without its row-end
// sums (wrong outputs) streamed 16% more bytes a second
// (BenchmarkQ4Shape/64x1408x512); HSUM4 recovers a third of that
// (RATIONALE.md, "Row-end sums four rows at a time").
#define HSUM4(OUT, IDX) \
	VINSERTF64X4 $1, Y24, Z25, Z26 \
	VINSERTF64X4 $1, Y22, Z23, Z27 \
	HSUM2T(Z26, Z27, Z28) \
	VPERMPS      Z28, IDX, Z28 \
	VMOVUPS      X28, OUT

// hsum4idx: the VPERMPS indices that gather HSUM4's four sums (lanes
// 0, 4, 8 and 12) into lanes 0..3.
DATA hsum4idx<>+0(SB)/8, $0x0000000400000000
DATA hsum4idx<>+8(SB)/8, $0x0000000c00000008
DATA hsum4idx<>+16(SB)/8, $0
DATA hsum4idx<>+24(SB)/8, $0
DATA hsum4idx<>+32(SB)/8, $0
DATA hsum4idx<>+40(SB)/8, $0
DATA hsum4idx<>+48(SB)/8, $0
DATA hsum4idx<>+56(SB)/8, $0
GLOBL hsum4idx<>(SB), RODATA|NOPTR, $64

// ROWEND ends a row of the AVX-512 one-row kernels (dotQ8_0x1NAVX512,
// dotQ4_0x1NAVX512), its lane sums in Y0: the row is put aside for HSUM4
// (IDX holding hsum4idx) when in a batch of four or when one can start
// (four rows left), else it takes its own hsum8; then the next row (back
// to the kernel's row label), or the end.
#define ROWEND(IDX) \
	TESTQ   R14, R14 \
	JNZ     stash \
	CMPQ    BX, $4 \
	JLT     single \
stash: \
	VMOVAPS Y24, Y25 \
	VMOVAPS Y23, Y24 \
	VMOVAPS Y22, Y23 \
	VMOVAPS Y0, Y22 \
	INCQ    R14 \
	CMPQ    R14, $4 \
	JLT     next \
	HSUM4(-12(DI), IDX) \
	XORQ    R14, R14 \
	JMP     next \
single: \
	HSUMPS(Y0, X0, X1) \
	VMOVSS X0, (DI) \
next: \
	ROWNEXT(row)

// Q8ROWPAIR is one pair of blocks b, b+1 of dotQ8_0x1NAVX512's row,
// quants at SI, activations at DX in PrepRows' layout, advancing both:
// the blocks widened (Z6 elements 0..15 of b then of b+1, Z7 elements
// 16..31), eight lane sums per block, converted, scaled by the products
// Z15 picks from Z9 (Z15 then stepped to the next pair's), and added into
// Y0, b's then b+1's.
#define Q8ROWPAIR \
	VMOVDQU       (SI), X6 \
	VINSERTI128   $1, 32(SI), Y6, Y6 \
	VPMOVSXBW     Y6, Z6 \
	VMOVDQU       16(SI), X7 \
	VINSERTI128   $1, 48(SI), Y7, Y7 \
	VPMOVSXBW     Y7, Z7 \
	VPMADDWD      (DX), Z6, Z20 \
	VPDPWSSD      64(DX), Z7, Z20 \
	VCVTDQ2PS     Z20, Z20 \
	VPERMPS       Z9, Z15, Z21 \
	VMULPS        Z21, Z20, Z20 \
	VEXTRACTF64X4 $1, Z20, Y21 \
	VADDPS        Y20, Y0, Y0 \
	VADDPS        Y21, Y0, Y0 \
	VPADDD        Z11, Z15, Z15 \
	ADDQ          $64, SI \
	ADDQ          $128, DX

// Q8AHEAD is dotQ4_0x1NAVX512's Q4AHEAD for dotQ8_0x1NAVX512: how far
// ahead of its loads it asks for the quants (bytes), one cache line per
// pair of blocks. The Mixtral-shaped q8_0 pack's decode on two threads:
// medians of ten interleaved runs 457 → 565 tok/s, new faster in eight.
#define Q8AHEAD 3072

// func dotQ8_0x1NAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xp *int16, nb, rows int)
//
// DotQ8_0x4N's products, one row after another (row r at wd + r·sd,
// wq + r·sq): the weights are read as one sequential stream, which the
// hardware prefetcher follows at the memory's speed, where the four rows
// read side by side (dotQ8_0x4NAVX512) are four streams it follows
// poorly, and the kernel waited on memory (RATIONALE.md, "q8_0 decode
// reads one row after another"). A 512-bit register holds two consecutive
// blocks of the row instead of one block of two rows; every lane sum,
// scale and addition is the four-row kernels', in the same order, so the
// bits are theirs. The whole pairs past the last group of eight go as a
// partial group (scales under a mask), a row's odd last block alone, as
// in dotQ8_0x1NAVX2; rows end four at a time (HSUM4).
TEXT ·dotQ8_0x1NAVX512(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ wd+8(FP), R12
	MOVQ wq+24(FP), R11
	MOVQ rows+64(FP), BX
	// Z12: the VPERMPS indices of a group's first pair of blocks (block 0
	// in the low half, 1 in the high); Z11: twos, to step them a pair.
	MOVL         $1, AX
	VPBROADCASTD AX, Y13
	VPXORD       Z14, Z14, Z14
	VINSERTI64X4 $1, Y13, Z14, Z12
	MOVL         $2, AX
	VPBROADCASTD AX, Z11

	VMOVDQU32    hsum4idx<>(SB), Z30
	XORQ         R14, R14

row:
	ROWSTART(xp+48(FP), nb+56(FP))
	TESTQ  R13, R13
	JZ     tail

group:
	VCVTPH2PS (R8), Y9
	VMULPS    (R9), Y9, Y9
	VMOVDQA64 Z12, Z15
	MOVQ      $4, R10

pair:
	PREFETCHT0 Q8AHEAD(SI)
	Q8ROWPAIR
	DECQ       R10
	JNZ        pair
	ADDQ        $16, R8
	ADDQ        $32, R9
	DECQ        R13
	JNZ         group

tail:
	// The whole pairs past the groups (up to three) as a partial group:
	// their 2·pairs scales loaded under a mask (K1), so no byte past the
	// row's is read, then the last block, if the row's count is odd.
	MOVQ      CX, R10
	ANDQ      $1, R10
	ANDQ      $-2, CX
	JZ        last
	MOVQ      CX, R13
	MOVL      $1, AX
	SHLQ      CX, AX
	DECQ      AX
	KMOVW     AX, K1
	SHRQ      $1, CX
	VCVTPH2PS.Z (R8), K1, Y9
	VMULPS.Z  (R9), Y9, K1, Y9
	VMOVDQA64 Z12, Z15

tpair:
	Q8ROWPAIR
	DECQ      CX
	JNZ       tpair
	LEAQ      (R8)(R13*2), R8
	LEAQ      (R9)(R13*4), R9

last:
	TESTQ     R10, R10
	JZ        store
	VPMOVSXBW (SI), Y1
	VPMOVSXBW 16(SI), Y2
	VPMADDWD  (DX), Y1, Y1
	VPMADDWD  32(DX), Y2, Y2
	VPADDD    Y2, Y1, Y1
	VCVTDQ2PS Y1, Y1
	BLOCKSCALE(Y4, X4)
	VMULPS    Y4, Y1, Y1
	VADDPS    Y1, Y0, Y0

store:
	ROWEND(Z30)

// The q4_0 2×n tile kernel below is the 2×8 tile for 1 ≤ n ≤ 8 tokens
// (prefill's experts, which get a few tokens each, and whole tiles of
// eight) whose activations are laid out twice over (DupQ16: per block
// elements 0..15 twice, then 16..31 twice), so that each multiply-add
// reads its 64 bytes straight from memory instead of broadcasting them
// first: six instructions per token and block for the two rows instead of
// eight. One copy of the loops per n, chosen once per call, each with
// tokens n..7 left out (their accumulators stay zero), so each output has
// q4_0's lanes and order and the one-row kernel's bits.

// TOKD is TOKT with the activation block's two halves in memory, each
// already twice over.
#define TOKD(XQ, XQ64, SCTAB, ACC) \
	VPMADDWD  XQ, Z8, Z26 \
	VPDPWSSD  XQ64, Z9, Z26 \
	VCVTDQ2PS Z26, Z26 \
	VPERMPS   SCTAB, Z15, Z27 \
	VMULPS    Z27, Z26, Z26 \
	VADDPS    Z26, ACC, ACC

// TILEBLOCKD is TILEBLOCK8 reading each activation half as it is
// (DupQ16).
#define TILEBLOCKD TILEBLOCK8(TOKD, 64, $128)

// func dotQ8_0x2x8DupAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, x2 *int16, xs, nb int)
//
// dotQ8_0x2x8AVX512 with the activations laid out by DupQ16, each half
// read straight into its multiply-add (TOKD) rather than broadcast into
// both halves of a register first (TOKT): the same products and sums.
TEXT ·dotQ8_0x2x8DupAVX512(SB), NOSPLIT, $0-72
	TILEPROLOGUE
	PAIRCONSTS
	SHLQ  $1, R12
	LEAQ  (R12)(R12*2), R13
	LEAQ  (DX)(R12*4), BX
	TESTQ R14, R14
	JZ    tail

group:
	PF2Q8
	TILESCALES8T
	MOVQ $8, AX

inner:
	PAIRQ8T((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1))
	TILEBLOCKD
	ADDQ $32, SI
	DECQ AX
	JNZ  inner
	ADDQ $16, R8
	ADDQ $32, R9
	DECQ R14
	JNZ  group

tail:
	TESTQ CX, CX
	JZ    done
	TILESCALE1T
	PAIRQ8T((SI), 16(SI), (SI)(R11*1), 16(SI)(R11*1))
	TILEBLOCKD
	ADDQ $32, SI
	ADDQ $2, R8
	ADDQ $4, R9
	DECQ CX
	JMP  tail

done:
	TILESTORE16
	VZEROUPPER
	RET


// Q8ROW1 is one block of dotQ8_0x1NAVX2's row: its 32 int8 quants at
// WOFF(SI) widened (Y6 elements 0..15, Y7 16..31), multiplied by the
// activations at XOFF(DX) and XOFF+32(DX), the halves added into eight
// int32 lanes, converted, scaled by the product at SOFF(SP) and added
// into Y0.
#define Q8ROW1(WOFF, XOFF, SOFF) \
	VPMOVSXBW    WOFF(SI), Y6 \
	VPMOVSXBW    WOFF+16(SI), Y7 \
	VPMADDWD     XOFF(DX), Y6, Y6 \
	VPMADDWD     XOFF+32(DX), Y7, Y7 \
	VPADDD       Y7, Y6, Y6 \
	VCVTDQ2PS    Y6, Y6 \
	VBROADCASTSS SOFF(SP), Y8 \
	VMULPS       Y8, Y6, Y6 \
	VADDPS       Y6, Y0, Y0

// func dotQ8_0x1NAVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, nb, rows int)
//
// q8_0 rows (vec.DotQ8_0, and rows rows one after another in one call for
// vec.DotQ8_0Rows; row r at wd + r·sd, wq + r·sq), as dotQ4_0x1NAVX2 for
// q4_0. Per block: the 32 int8 weights widened to two vectors of 16
// int16, multiplied by x and added in pairs (VPMADDWD), the halves added
// into eight int32 lanes, converted, scaled by wd·xd and added into Y0 in
// block order; hsum8 at the row's end. A group of eight blocks' scale
// products is computed at once (SCALES8's) and broadcast from the stack
// (nine instructions a block, where a per-block conversion and multiply
// took fourteen), and the quants are asked for Q8AHEAD bytes ahead; the
// blocks past the groups go one at a time. The lanes and order are
// dotQ8_0Go's and dotQ8_0x4AVX2's.
TEXT ·dotQ8_0x1NAVX2(SB), NOSPLIT, $32-72
	MOVQ out+0(FP), DI
	MOVQ wd+8(FP), R12
	MOVQ wq+24(FP), R11
	MOVQ rows+64(FP), BX

row8:
	ROWSTART(xq+48(FP), nb+56(FP))
	TESTQ  R13, R13
	JZ     tail8

group8:
	PREFETCHT0 Q8AHEAD(SI)
	PREFETCHT0 Q8AHEAD+64(SI)
	PREFETCHT0 Q8AHEAD+128(SI)
	PREFETCHT0 Q8AHEAD+192(SI)
	VCVTPH2PS  (R8), Y9
	VMULPS     (R9), Y9, Y9
	VMOVUPS    Y9, 0(SP)
	Q8ROW1(0, 0, 0)
	Q8ROW1(32, 64, 4)
	Q8ROW1(64, 128, 8)
	Q8ROW1(96, 192, 12)
	Q8ROW1(128, 256, 16)
	Q8ROW1(160, 320, 20)
	Q8ROW1(192, 384, 24)
	Q8ROW1(224, 448, 28)
	ADDQ       $256, SI
	ADDQ       $512, DX
	ADDQ       $16, R8
	ADDQ       $32, R9
	DECQ       R13
	JNZ        group8

tail8:
	TESTQ     CX, CX
	JZ        store8
	VPMOVSXBW (SI), Y6
	VPMOVSXBW 16(SI), Y7
	VPMADDWD  (DX), Y6, Y6
	VPMADDWD  32(DX), Y7, Y7
	VPADDD    Y7, Y6, Y6
	ROWSCALE((R8))
	ACCUMULATE(Y0)
	ADDQ      $32, SI
	ADDQ      $64, DX
	ADDQ      $2, R8
	ADDQ      $4, R9
	DECQ      CX
	JMP       tail8

store8:
	ROWEND1(row8)

// SCORESAHEAD asks for the first 256 bytes (a 64-wide head's slice) of
// each of the eight rows 16 rows past the eight scoresHeadsAVX2 is about
// to read (DX, row stride R8), using AX: the eight-row loop read its
// cache rows unrequested, a new line of each row every other chunk, and
// the rows of a decode's cache come from memory (the weights streamed
// between two tokens evict them). Asking past the cache's end faults on
// nothing. Same bits.
#define SCORESAHEAD \
	LEAQ (DX)(R8*8), AX \
	LEAQ (AX)(R8*8), AX \
	PF256(AX) \
	PF256(AX) \
	PF256(AX) \
	PF256(AX) \
	PF256(AX) \
	PF256(AX) \
	PF256(AX) \
	PF256(AX)

// PF256 asks for the 256 bytes at P and steps P a row (R8) on.
#define PF256(P) \
	PREFETCHT0 (P) \
	PREFETCHT0 64(P) \
	PREFETCHT0 128(P) \
	PREFETCHT0 192(P) \
	ADDQ       R8, P

// func scoresHeadsAVX2(dst *float32, dstride int, q, k *float32, stride, rows, heads, chunks, group, phase int)
//
// vec.ScoresHeads: for each row (k, advancing by stride bytes), each head
// (q advancing by chunks·32 bytes, its output by dstride) is
// scoresAVX2's one row: fused multiply-adds over the chunks from zero,
// then hsum8, so the bits are its. Whole blocks of eight rows go as
// scoresAVX2's do, head after head over the block, asking for the rows
// 16 ahead first (SCORESAHEAD); the rows left, one at a time. The row's slice advances by a head's
// width every group heads, from phase heads into the first group. Each
// chunk asks for the same bytes four rows ahead, as scoresAVX2 does: when
// the items split a row's heads, each reads part of every 4 KB row, a new
// page each time, which the hardware prefetcher does not follow.
TEXT ·scoresHeadsAVX2(SB), NOSPLIT, $8-80
	MOVQ    dst+0(FP), DI
	MOVQ    k+24(FP), DX
	MOVQ    chunks+56(FP), R9
	SHLQ    $5, R9 // a head's bytes
	MOVQ    rows+40(FP), CX
	MOVQ    stride+32(FP), R8
	VMOVDQU scoresidx8<>(SB), Y15

sh8:
	// Eight rows at a time, head after head: eight accumulators, one per
	// row, summed by SCORES8SUM with HSUMPS's tree (the one-row loop's
	// bits). Heads that share a slice (grouped-query attention) find the
	// eight rows' slices in L1 after the first.
	CMPQ CX, $8
	JL   sh1
	SCORESAHEAD
	MOVQ DI, R12
	MOVQ q+16(FP), SI
	MOVQ DX, R10
	MOVQ phase+72(FP), R13
	MOVQ heads+48(FP), R14

shhead8:
	ZERO8
	MOVQ   chunks+56(FP), BX
	MOVQ   BX, 0(SP)
	MOVQ   SI, R11
	MOVQ   R10, AX
	LEAQ   (R10)(R8*2), BX
	ADDQ   R8, BX // row 3
	LEAQ   (BX)(R8*2), R15
	ADDQ   R8, R15 // row 6

shchunk8:
	VMOVUPS     (R11), Y8
	FMA8ROWS(AX, BX, R15)
	ADDQ        $32, R11
	ADDQ        $32, AX
	ADDQ        $32, BX
	ADDQ        $32, R15
	DECQ        0(SP)
	JNZ         shchunk8
	SCORES8SUM
	VMOVUPS     Y0, (R12)
	ADDQ        dstride+8(FP), R12
	ADDQ        R9, SI
	INCQ        R13
	CMPQ        R13, group+64(FP)
	JL          shsame8
	XORQ        R13, R13
	ADDQ        R9, R10

shsame8:
	DECQ R14
	JNZ  shhead8
	ADDQ $32, DI
	LEAQ (DX)(R8*8), DX
	SUBQ $8, CX
	JMP  sh8

sh1:
	TESTQ CX, CX
	JZ    shdone
	SHLQ  $2, R8 // four rows ahead

shrow:
	MOVQ DI, R12
	MOVQ q+16(FP), SI
	MOVQ DX, R11
	MOVQ phase+72(FP), R13
	MOVQ heads+48(FP), R14

shhead:
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX
	LEAQ   (R11)(R8*1), R10

shchunk:
	PREFETCHT0  (R10)(AX*1)
	VMOVUPS     (SI)(AX*1), Y1
	VFMADD231PS (R11)(AX*1), Y1, Y0
	ADDQ        $32, AX
	CMPQ        AX, R9
	JL          shchunk
	HSUMPS(Y0, X0, X1)
	VMOVSS      X0, (R12)
	ADDQ        dstride+8(FP), R12
	ADDQ        R9, SI
	INCQ        R13
	CMPQ        R13, group+64(FP)
	JL          shsame
	XORQ        R13, R13
	ADDQ        R9, R11

shsame:
	DECQ R14
	JNZ  shhead
	ADDQ $4, DI
	ADDQ stride+32(FP), DX
	DECQ CX
	JNZ  shrow

shdone:
	VZEROUPPER
	RET

// func axpyHeadsAVX2(o, a *float32, astride int, v *float32, stride, rows, heads, chunks, group, phase int)
//
// vec.AxpyHeads: for each row (v, advancing by stride bytes), each head's
// outputs (o, a head's width apart) += its weight (a, astride bytes apart,
// the next row's 4 bytes on) times the row's slice, axpyAVX2's fused
// multiply-add per value, so the bits are its. Rows go in blocks of up
// to 16, head after head over the block (so heads that share a slice read
// it from L1 after the first), the head's values in eight registers 64 at
// a time, then one register at a time. The row's slice advances, and the
// rows four ahead are asked for, as in scoresHeadsAVX2.
TEXT ·axpyHeadsAVX2(SB), NOSPLIT, $16-80
	MOVQ chunks+56(FP), R9
	SHLQ $5, R9 // a head's bytes
	MOVQ stride+32(FP), R8
	MOVQ rows+40(FP), CX
	MOVQ v+24(FP), DX
	MOVQ a+8(FP), BX

ahblock:
	// Blocks of up to 16 rows (0(SP)): each head's outputs held in
	// registers, 64 at a time, across the block's rows (one chain of
	// fused multiply-adds per value, row after row, the Axpy loop's
	// bits), so a head's outputs are loaded and stored once a block
	// rather than once a row. Heads that share a slice find the block's
	// rows in L1 after the first.
	TESTQ   CX, CX
	JZ      ahdone
	MOVQ    $16, AX
	CMPQ    CX, AX
	CMOVQLT CX, AX
	MOVQ    AX, 0(SP)
	MOVQ    o+0(FP), DI
	MOVQ    BX, SI
	MOVQ    DX, R10
	MOVQ    phase+72(FP), R13
	MOVQ    heads+48(FP), R14

ahhead:
	XORQ R12, R12 // the pass's first byte in the head

ahpass8:
	MOVQ    R9, AX
	SUBQ    R12, AX
	CMPQ    AX, $256
	JL      ahpass1
	LEAQ    (DI)(R12*1), R11
	LOAD8(R11)
	MOVQ    0(SP), AX
	MOVQ    AX, 8(SP)
	LEAQ    (R10)(R12*1), AX
	MOVQ    SI, R15

ahrow8:
	PF4ROWS(AX)
	VBROADCASTSS (R15), Y8
	FMA8COLS(AX)
	ADDQ         $4, R15
	ADDQ         R8, AX
	DECQ         8(SP)
	JNZ          ahrow8
	STORE8(R11)
	ADDQ         $256, R12
	JMP          ahpass8

ahpass1:
	CMPQ    R12, R9
	JGE     ahnext
	LEAQ    (DI)(R12*1), R11
	VMOVUPS (R11), Y0
	MOVQ    0(SP), AX
	MOVQ    AX, 8(SP)
	LEAQ    (R10)(R12*1), AX
	MOVQ    SI, R15

ahrow1:
	PREFETCHT0   (AX)(R8*4)
	VBROADCASTSS (R15), Y8
	VFMADD231PS  (AX), Y8, Y0
	ADDQ         $4, R15
	ADDQ         R8, AX
	DECQ         8(SP)
	JNZ          ahrow1
	VMOVUPS      Y0, (R11)
	ADDQ         $32, R12
	JMP          ahpass1

ahnext:
	ADDQ R9, DI
	ADDQ astride+16(FP), SI
	INCQ R13
	CMPQ R13, group+64(FP)
	JL   ahsame
	XORQ R13, R13
	ADDQ R9, R10

ahsame:
	DECQ  R14
	JNZ   ahhead
	MOVQ  0(SP), AX
	SUBQ  AX, CX
	LEAQ  (BX)(AX*4), BX
	IMULQ R8, AX
	ADDQ  AX, DX
	JMP   ahblock

ahdone:
	VZEROUPPER
	RET

// func divMaxAVX2(x *float32, n int, s float32) (m float32, nan bool)
//
// x[i] /= s for n a multiple of 8 (n > 0), m the largest quotient as
// VMAXPS keeps it lane by lane (DivMax settles a zero's sign), nan
// whether any quotient is unordered.
TEXT ·divMaxAVX2(SB), NOSPLIT, $0-29
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1
	VMOVUPS      (DI), Y0
	VDIVPS       Y1, Y0, Y0
	VMOVUPS      Y0, (DI)
	VMOVAPS      Y0, Y2
	VCMPPS       $3, Y0, Y0, Y3
	ADDQ         $32, DI
	SUBQ         $8, CX
	JZ           dmreduce

dmloop:
	VMOVUPS (DI), Y0
	VDIVPS  Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	VMAXPS  Y0, Y2, Y2
	VCMPPS  $3, Y0, Y0, Y4
	VORPS   Y4, Y3, Y3
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     dmloop

dmreduce:
	VEXTRACTF128 $1, Y2, X4
	VMAXPS       X4, X2, X2
	VPERMILPS    $0x4e, X2, X4
	VMAXPS       X4, X2, X2
	VPERMILPS    $0xb1, X2, X4
	VMAXPS       X4, X2, X2
	VMOVSS       X2, m+24(FP)
	VMOVMSKPS    Y3, AX
	TESTL        AX, AX
	SETNE        nan+28(FP)
	VZEROUPPER
	RET

// func scaleAVX2(x *float32, n int, c float32)
//
// x[i] *= c for n a multiple of 8 (n > 0).
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS c+16(FP), Y1

scloop:
	VMULPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     scloop
	VZEROUPPER
	RET

// func sumSquares8AVX2(a *[8]float32, x *float32, n int)
//
// a[j mod 8] += x[j]·x[j] for j < n, a multiple of 8 (n > 0): one
// accumulator of eight lanes, each square rounded (VMULPS) before it is
// added, as vec.RMSNormLanes' Go lanes are.
TEXT ·sumSquares8AVX2(SB), NOSPLIT, $0-24
	MOVQ    a+0(FP), DI
	MOVQ    x+8(FP), SI
	MOVQ    n+16(FP), CX
	VMOVUPS (DI), Y0

ssloop:
	VMOVUPS (SI), Y1
	VMULPS  Y1, Y1, Y1
	VADDPS  Y1, Y0, Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     ssloop
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func rmsScaleAVX2(o, w, x *float32, n int, s float32)
//
// o[j] = w[j]·(s·x[j]) for j < n, a multiple of 8 (n > 0), o possibly x:
// the two products rounded in that order, as vec.RMSNorm's loop.
TEXT ·rmsScaleAVX2(SB), NOSPLIT, $0-36
	MOVQ         o+0(FP), DI
	MOVQ         w+8(FP), R8
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	VBROADCASTSS s+32(FP), Y2

rsloop:
	VMULPS  (SI), Y2, Y0
	VMULPS  (R8), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     rsloop
	VZEROUPPER
	RET

// func halfRowsAVX2(dst *float32, src *uint16, stride, rows, chunks int)
//
// vec.HalfRows for n = 8·chunks: each row's chunks of eight f16 values
// (rows stride bytes apart) widened by VCVTPH2PS, exactly, into dst's
// consecutive rows.
TEXT ·halfRowsAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ stride+16(FP), R8
	MOVQ rows+24(FP), CX

hrrow:
	MOVQ chunks+32(FP), BX
	MOVQ SI, R10

hrchunk:
	VCVTPH2PS (R10), Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, R10
	ADDQ      $32, DI
	DECQ      BX
	JNZ       hrchunk
	ADDQ      R8, SI
	DECQ      CX
	JNZ       hrrow
	VZEROUPPER
	RET

// Q4STEP is one step of four q4_0 blocks of dotQ4_0x1NAVX512's row: their
// 64 bytes of nibbles at WOFF(SI), as they are (Z6 the low nibbles,
// elements 0..15 of each block, Z7 the high ones, 16..31), their
// activations at XOFF(DX) in PrepQ4_0's layout (the high bytes h of
// values 0..15 at XOFF, of 16..31 at XOFF+64, the low bytes l at
// XOFF+128 and XOFF+192), their offsets at COFF(R10). VPDPBUSD sums four
// byte products into each of sixteen lanes (four a block, q4_0's lanes,
// q4_0.go): Σ q·h into Z1 from zero and Σ l·q into Z2 from the offsets,
// so Z1·256 + Z2 is each lane's Σ (q−8)·x, exactly; converted, scaled by
// the products IDX picks from Z9 (block j's for lanes 4j..4j+3) and added
// into Z0: thirteen instructions per four blocks, where the earlier
// order's kernel took twenty.
#define Q4STEP(WOFF, XOFF, XOFF64, XOFF128, XOFF192, COFF, IDX) \
	Q4UNPACK(WOFF(SI)) \
	Q4SUMS(DX, XOFF, XOFF64, XOFF128, XOFF192, COFF(R10), Z9, IDX, Z0)

// Q4UNPACK puts a step's nibbles at W into Z6 (the low ones) and Z7.
#define Q4UNPACK(W) \
	VPANDD     W, Z14, Z6 \
	VPSRLW     $4, W, Z7 \
	VPANDD     Z14, Z7, Z7

// Q4SUMS is one token's part of a step: its activations off XB, its
// offsets at C, its scale products in SC, its sums into ACC.
#define Q4SUMS(XB, XOFF, XOFF64, XOFF128, XOFF192, C, SC, IDX, ACC) \
	VPXORD     Z1, Z1, Z1 \
	VPDPBUSD   XOFF(XB), Z6, Z1 \
	VPDPBUSD   XOFF64(XB), Z7, Z1 \
	VMOVDQU32  C, Z2 \
	VMOVDQU64  XOFF128(XB), Z3 \
	VMOVDQU64  XOFF192(XB), Z4 \
	VPDPBUSD   Z6, Z3, Z2 \
	VPDPBUSD   Z7, Z4, Z2 \
	Q4SCALE(SC, IDX, ACC)

// Q4SCALE makes Z1·256 + Z2 each lane's sum, converts it, scales it by
// the products IDX picks from SC and adds it into ACC.
#define Q4SCALE(SC, IDX, ACC) \
	VPSLLD     $8, Z1, Z1 \
	VPADDD     Z1, Z2, Z2 \
	VCVTDQ2PS  Z2, Z2 \
	VPERMPS    SC, IDX, Z5 \
	VMULPS     Z5, Z2, Z2 \
	VADDPS     Z2, ACC, ACC

// Q4UNPACKSHORT is Q4UNPACK for a row's short last step: its 16·r
// nibble bytes loaded under K1.
#define Q4UNPACKSHORT \
	VMOVDQU8.Z (SI), K1, Z6 \
	VPSRLW     $4, Z6, Z7 \
	VPANDD     Z14, Z6, Z6 \
	VPANDD     Z14, Z7, Z7

// Q4SUMSSHORT is Q4SUMS for the short last step: the token's activations
// at XB with parts P = 16·r bytes apart, its offsets at C, all under the
// masks K1 (bytes) and K2 (offsets); T is scratch.
#define Q4SUMSSHORT(XB, C, SC, ACC, P, T) \
	VPXORD      Z1, Z1, Z1 \
	VMOVDQU8.Z  (XB), K1, Z3 \
	VPDPBUSD    Z3, Z6, Z1 \
	VMOVDQU8.Z  (XB)(P*1), K1, Z4 \
	VPDPBUSD    Z4, Z7, Z1 \
	VMOVDQU32.Z (C), K2, Z2 \
	VMOVDQU8.Z  (XB)(P*2), K1, Z3 \
	VPDPBUSD    Z6, Z3, Z2 \
	LEAQ        (XB)(P*2), T \
	VMOVDQU8.Z  (T)(P*1), K1, Z4 \
	VPDPBUSD    Z7, Z4, Z2 \
	Q4SCALE(SC, Z16, ACC)

// q4stepidx: the VPERMPS indices that give block j's scale product to
// lanes 4j..4j+3 (Z16; Z17 adds 4 for a group's second step).
DATA q4stepidx<>+0(SB)/8, $0x0000000000000000
DATA q4stepidx<>+8(SB)/8, $0x0000000000000000
DATA q4stepidx<>+16(SB)/8, $0x0000000100000001
DATA q4stepidx<>+24(SB)/8, $0x0000000100000001
DATA q4stepidx<>+32(SB)/8, $0x0000000200000002
DATA q4stepidx<>+40(SB)/8, $0x0000000200000002
DATA q4stepidx<>+48(SB)/8, $0x0000000300000003
DATA q4stepidx<>+56(SB)/8, $0x0000000300000003
GLOBL q4stepidx<>(SB), RODATA, $64

// Q4AHEAD is how far ahead of its loads dotQ4_0x1NAVX512 asks for the
// nibbles (bytes). The hardware prefetcher follows the one stream, but
// not far enough ahead to hide the memory's latency (RATIONALE.md, "q4_0
// decode reads one row after another").
#define Q4AHEAD 3072

// Q4PREFETCH asks for the nibbles Q4AHEAD bytes ahead of SI and for the
// f16 scales as far ahead of R8 (an eighth of the bytes: 2 a block against
// 16). The scales are a stream of their own, one 64-byte line for every
// 512 bytes of nibbles, and the hardware prefetcher starts it again at
// every 4 KB page of it; asked for ahead, the Mixtral- and OLMoE-shaped
// q4_0 decode ran 1.02× and 1.01–1.05× faster (RATIONALE.md, "q4_0 decode
// asks for its scales ahead"). Once a group: four of every eight asks for
// a line already asked for, which costs less than a branch.
#define Q4PREFETCH \
	PREFETCHT0 Q4AHEAD(SI) \
	PREFETCHT0 Q4AHEAD+64(SI) \
	PREFETCHT0 (Q4AHEAD/8)(R8)

// Q4CONSTS sets the q4_0 step kernels' constants: Z16 and Z17 the
// VPERMPS indices of a group's two steps (q4stepidx, then 4 more), Z14
// the nibble mask.
#define Q4CONSTS \
	VMOVDQU32    q4stepidx<>(SB), Z16 \
	MOVL         $4, AX \
	VPBROADCASTD AX, Z11 \
	VPADDD       Z11, Z16, Z17 \
	MOVL         $0x0f0f0f0f, AX \
	VPBROADCASTD AX, Z14

// Q4MASKS sets the short last step's masks for rows of NB blocks: K1 its
// 16·r bytes of each part, K2 its 4·r offsets, K3 its r scales (r = NB
// mod 4), using AX and CX.
#define Q4MASKS(NB) \
	MOVQ  NB, CX \
	ANDQ  $3, CX \
	MOVQ  $1, AX \
	SHLQ  CX, AX \
	DECQ  AX \
	KMOVW AX, K3 \
	SHLQ  $2, CX \
	MOVQ  $1, AX \
	SHLQ  CX, AX \
	DECQ  AX \
	KMOVW AX, K2 \
	SHLQ  $2, CX \
	MOVQ  $1, AX \
	SHLQ  CX, AX \
	DECQ  AX \
	KMOVQ AX, K1

// func dotQ4_0x1NAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xb *byte, c *int32, nb, rows int)
//
// The q4_0 products of rows rows one after another (row r at wd + r·sd,
// wq + r·sq) with one row of activations laid out by PrepQ4_0 (xb, c):
// groups of eight blocks as two steps (Q4STEP), the group's eight scale
// products computed at once; then a whole step if four blocks are left,
// and a row's last one to three blocks (PrepQ4_0's short last step, its
// parts 16·r bytes apart) under masks, so no byte past the row's is read.
// Every lane sum, product and addition is dotQ4_0Go's, in its order; rows
// end four at a time (ROWEND's HSUM4), the upper eight lanes added onto
// the lower eight first (hsum16).
TEXT ·dotQ4_0x1NAVX512(SB), NOSPLIT, $0-80
	MOVQ out+0(FP), DI
	MOVQ wd+8(FP), R12
	MOVQ wq+24(FP), R11
	MOVQ rows+72(FP), BX
	Q4CONSTS
	VMOVDQU32    hsum4idx<>(SB), Z15
	XORQ         R14, R14
	Q4MASKS(nb+64(FP))
	// R15 = 16·r, the short last step's parts' distance
	MOVQ nb+64(FP), R15
	ANDQ $3, R15
	SHLQ $4, R15

row:
	ROWSTART(xb+48(FP), nb+64(FP))
	MOVQ   c+56(FP), R10
	TESTQ  R13, R13
	JZ     rest

group:
	Q4PREFETCH
	VCVTPH2PS  (R8), Y9
	VMULPS     (R9), Y9, Y9
	Q4STEP(0, 0, 64, 128, 192, 0, Z16)
	Q4STEP(64, 256, 320, 384, 448, 64, Z17)
	ADDQ       $128, SI
	ADDQ       $512, DX
	ADDQ       $128, R10
	ADDQ       $16, R8
	ADDQ       $32, R9
	DECQ       R13
	JNZ        group

rest:
	// CX = the blocks past the groups: a whole step first if four are.
	CMPQ       CX, $4
	JLT        short
	VCVTPH2PS  (R8), X9
	VMULPS     (R9), X9, X9
	Q4STEP(0, 0, 64, 128, 192, 0, Z16)
	ADDQ       $64, SI
	ADDQ       $256, DX
	ADDQ       $64, R10
	ADDQ       $8, R8
	ADDQ       $16, R9
	SUBQ       $4, CX

short:
	TESTQ      CX, CX
	JZ         store
	VCVTPH2PS.Z (R8), K3, X9
	VMULPS.Z   (R9), X9, K3, X9
	Q4UNPACKSHORT
	Q4SUMSSHORT(DX, R10, Z9, Z0, R15, AX)

store:
	VEXTRACTF64X4 $1, Z0, Y2
	VADDPS     Y2, Y0, Y0
	ROWEND(Z15)

// Q4HALF is two q4_0 blocks of dotQ4_0x1NAVX2's row, half a step of
// PrepQ4_0's layout: their 32 bytes of nibbles at WOFF(SI) (Y6 the low
// nibbles, Y7 the high), their activations' parts at XH0, XH1 (the high
// bytes of values 0..15 and of 16..31), XL0, XL1 (the low bytes) off DX,
// their eight offsets at COFF(R10). VPMADDUBSW multiplies bytes in pairs
// and VPMADDWD adds the pairs' pairs: each of the eight lanes (four a
// block, q4_0's lanes) gets Σ q·h in Y8 and Σ l·q + offsets in Y10, no
// word near overflow (|Σ q·h| ≤ 4·15·128, Σ l·q ≤ 4·255·15), so Y8·256 +
// Y10 is each lane's Σ (q−8)·x, exactly; converted, scaled by the
// products IDX picks from Y9 and added into ACC: Y0 for a step's blocks
// 0 and 1, Y1 for 2 and 3 (q4_0's sixteen accumulators, q4_0.go).
#define Q4HALF(WOFF, XH0, XH1, XL0, XL1, COFF, IDX, ACC) \
	Q4BYTESUMS(Y6, Y7, Y8, Y10, Y11, Y13, Y14, WOFF, XH0, XH1, XL0, XL1, COFF) \
	VPERMPS    Y9, IDX, Y11 \
	VMULPS     Y11, Y10, Y10 \
	VADDPS     Y10, ACC, ACC

// Q4ONE is Q4HALF for one block (16 bytes of nibbles, four lanes), in
// 128-bit registers; its lanes go into the low four of ACC (the upper
// four get +0, which changes no sum: an accumulator from +0 is never −0).
#define Q4ONE(WOFF, XH0, XH1, XL0, XL1, COFF, IDX, ACC) \
	Q4BYTESUMS(X6, X7, X8, X10, X11, X13, X14, WOFF, XH0, XH1, XL0, XL1, COFF) \
	VPERMPS    Y9, IDX, Y11 \
	VMULPS     X11, X10, X10 \
	VADDPS     Y10, ACC, ACC

// Q4BYTESUMS is the integer part of Q4HALF (Y registers) or Q4ONE (X
// registers, the same numbers), converted: the lane sums as floats in
// V10.
#define Q4BYTESUMS(V6, V7, V8, V10, V11, V13, V14, WOFF, XH0, XH1, XL0, XL1, COFF) \
	VMOVDQU    WOFF(SI), V6 \
	VPSRLW     $4, V6, V7 \
	VPAND      V14, V6, V6 \
	VPAND      V14, V7, V7 \
	VPMADDUBSW XH0(DX), V6, V8 \
	VPMADDUBSW XH1(DX), V7, V10 \
	VPADDW     V10, V8, V8 \
	VMOVDQU    XL0(DX), V10 \
	VPMADDUBSW V6, V10, V10 \
	VMOVDQU    XL1(DX), V11 \
	VPMADDUBSW V7, V11, V11 \
	VPADDW     V11, V10, V10 \
	VPMADDWD   V13, V8, V8 \
	VPMADDWD   V13, V10, V10 \
	VPSLLD     $8, V8, V8 \
	VPADDD     V8, V10, V10 \
	VPADDD     COFF(R10), V10, V10 \
	VCVTDQ2PS  V10, V10

// Q4TAILSCALE sets lane I of X9 to the scale product of the short last
// step's block I (f16 at I·2(R8), activation scale at I·4(R9)), as
// VCVTPH2PS and VMULPS give it; VINSERTPS (IMM = I<<4) clears Y9's upper
// half, which the short step does not read.
#define Q4TAILSCALE(I, IMM) \
	MOVWLZX    (I*2)(R8), AX \
	VMOVD      AX, X12 \
	VCVTPH2PS  X12, X12 \
	VMULSS     (I*4)(R9), X12, X12 \
	VINSERTPS  $IMM, X12, X9, X9

// q4halfidx: the VPERMPS indices of Q4HALF's four halves of a group of
// eight blocks (block i's scale product to four lanes each).
DATA q4halfidx<>+0(SB)/8, $0x0000000000000000
DATA q4halfidx<>+8(SB)/8, $0x0000000000000000
DATA q4halfidx<>+16(SB)/8, $0x0000000100000001
DATA q4halfidx<>+24(SB)/8, $0x0000000100000001
GLOBL q4halfidx<>(SB), RODATA, $32

// func dotQ4_0x1NAVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xb *byte, c *int32, nb, rows int)
//
// dotQ4_0x1NAVX512 for machines without AVX-512: groups of eight blocks
// as four halves of steps (Q4HALF), a group's scale products computed at
// once; then a whole step if four blocks are left, and a row's short last
// step (one to three blocks, its parts 16·r bytes apart) as a half and a
// single block (Q4ONE), reading no byte past the row's. Every lane sum,
// product and addition is dotQ4_0Go's; Y1 is added onto Y0 and hsum8
// taken at the end of each row.
TEXT ·dotQ4_0x1NAVX2(SB), NOSPLIT, $0-80
	MOVQ out+0(FP), DI
	MOVQ wd+8(FP), R12
	MOVQ wq+24(FP), R11
	MOVQ rows+72(FP), BX
	VMOVDQU      q4halfidx<>(SB), Y2
	MOVL         $2, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13
	VPADDD       Y13, Y2, Y3
	VPADDD       Y13, Y3, Y4
	VPADDD       Y13, Y4, Y5
	MOVL         $0x00010001, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14

row4:
	ROWSTART(xb+48(FP), nb+64(FP))
	VXORPS Y1, Y1, Y1
	MOVQ   c+56(FP), R10
	TESTQ  R13, R13
	JZ     rest4

group4:
	Q4PREFETCH
	VCVTPH2PS  (R8), Y9
	VMULPS     (R9), Y9, Y9
	Q4HALF(0, 0, 64, 128, 192, 0, Y2, Y0)
	Q4HALF(32, 32, 96, 160, 224, 32, Y3, Y1)
	Q4HALF(64, 256, 320, 384, 448, 64, Y4, Y0)
	Q4HALF(96, 288, 352, 416, 480, 96, Y5, Y1)
	ADDQ       $128, SI
	ADDQ       $512, DX
	ADDQ       $128, R10
	ADDQ       $16, R8
	ADDQ       $32, R9
	DECQ       R13
	JNZ        group4

rest4:
	CMPQ       CX, $4
	JLT        short4
	VCVTPH2PS  (R8), X9
	VMULPS     (R9), X9, X9
	Q4HALF(0, 0, 64, 128, 192, 0, Y2, Y0)
	Q4HALF(32, 32, 96, 160, 224, 32, Y3, Y1)
	ADDQ       $64, SI
	ADDQ       $256, DX
	ADDQ       $64, R10
	ADDQ       $8, R8
	ADDQ       $16, R9
	SUBQ       $4, CX

short4:
	CMPQ       CX, $1
	JLT        store4
	JEQ        one4
	CMPQ       CX, $2
	JEQ        two4
	// three blocks: parts 48 bytes apart
	Q4TAILSCALE(0, 0x00)
	Q4TAILSCALE(1, 0x10)
	Q4TAILSCALE(2, 0x20)
	Q4HALF(0, 0, 48, 96, 144, 0, Y2, Y0)
	Q4ONE(32, 32, 80, 128, 176, 32, Y3, Y1)
	JMP        store4

two4:
	Q4TAILSCALE(0, 0x00)
	Q4TAILSCALE(1, 0x10)
	Q4HALF(0, 0, 32, 64, 96, 0, Y2, Y0)
	JMP        store4

one4:
	Q4TAILSCALE(0, 0x00)
	Q4ONE(0, 0, 16, 32, 48, 0, Y2, Y0)

store4:
	VADDPS Y1, Y0, Y0
	ROWEND1(row4)

// func prepQ4_0AVX2(xb *byte, c *int32, nb int, q *int16, b0, n int)
//
// PrepQ4_0 of the n blocks at q, blocks b0.. of a row of nb: each block's
// 32 values loaded once; their high bytes (VPSRAW, VPACKSSWB: no value
// saturates) and low bytes (masked, VPACKUSWB) put in order by VPERMQ
// (the packs interleave the two 128-bit lanes) and stored as the layout's
// four 16-byte parts; the offsets −8·Σ over each lane's eight values by
// VPMADDWD with ones, the two halves added, VPHADDD and VPERMQ.
TEXT ·prepQ4_0AVX2(SB), NOSPLIT, $0-48
	MOVQ xb+0(FP), DI
	MOVQ c+8(FP), R10
	MOVQ nb+16(FP), R11
	MOVQ q+24(FP), SI
	MOVQ b0+32(FP), BX
	MOVQ n+40(FP), CX
	MOVL         $0x00ff00ff, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15
	MOVL         $0x00010001, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	VPXOR        Y13, Y13, Y13

prep:
	// R8 = the block's high bytes of values 0..15, R9 = the distance
	// between its parts: 64, or 16·r in a short last step of r blocks.
	MOVQ  BX, AX
	SHRQ  $2, AX
	MOVQ  AX, R8
	SHLQ  $8, R8
	MOVQ  BX, DX
	ANDQ  $3, DX
	SHLQ  $4, DX
	ADDQ  DX, R8
	ADDQ  DI, R8
	SHLQ  $2, AX
	MOVQ  R11, R9
	SUBQ  AX, R9
	CMPQ  R9, $4
	JLT   shortpart
	MOVQ  $64, R9
	JMP   parts

shortpart:
	SHLQ  $4, R9

parts:
	VMOVDQU      (SI), Y0
	VMOVDQU      32(SI), Y1
	VPSRAW       $8, Y0, Y2
	VPSRAW       $8, Y1, Y3
	VPACKSSWB    Y3, Y2, Y2
	VPERMQ       $0xd8, Y2, Y2
	VMOVDQU      X2, (R8)
	VEXTRACTI128 $1, Y2, (R8)(R9*1)
	VPAND        Y15, Y0, Y2
	VPAND        Y15, Y1, Y3
	VPACKUSWB    Y3, Y2, Y2
	VPERMQ       $0xd8, Y2, Y2
	VMOVDQU      X2, (R8)(R9*2)
	LEAQ         (R8)(R9*2), R8
	VEXTRACTI128 $1, Y2, (R8)(R9*1)
	VPMADDWD     Y14, Y0, Y2
	VPMADDWD     Y14, Y1, Y3
	VPADDD       Y3, Y2, Y2
	VPHADDD      Y2, Y2, Y2
	VPERMQ       $0x08, Y2, Y2
	VPSLLD       $3, Y2, Y2
	VPSUBD       Y2, Y13, Y2
	MOVQ         BX, AX
	SHLQ         $4, AX
	VMOVDQU      X2, (R10)(AX*1)
	ADDQ         $64, SI
	INCQ         BX
	DECQ         CX
	JNZ          prep
	VZEROUPPER
	RET

// Q4STEP2 is Q4STEP for two tokens: the step's nibbles unpacked once
// (Z6, Z7) for token A (activations off DX, offsets at COFF(R10), scale
// products in Z9, sums into Z0) and token B (off R15, at COFF(AX), Z12,
// into Z8).
#define Q4STEP2(WOFF, XOFF, XOFF64, XOFF128, XOFF192, COFF, IDX) \
	Q4UNPACK(WOFF(SI)) \
	Q4SUMS(DX, XOFF, XOFF64, XOFF128, XOFF192, COFF(R10), Z9, IDX, Z0) \
	Q4SUMS(R15, XOFF, XOFF64, XOFF128, XOFF192, COFF(AX), Z12, IDX, Z8)

// func dotQ4_0x1N2AVX512(out, outB *float32, wd *byte, sd int, wq *byte, sq int, xd, xdB *float32, xb, xbB *byte, c, cB *int32, nb, rows int)
//
// dotQ4_0x1NAVX512 for two tokens at once (prefill's): each step's
// nibbles unpacked once for both, token A's products into out and token
// B's into outB, each with the one-token kernel's bits (its lanes, scale
// products, additions and hsum16 in the same order; a row's sums are
// reduced one at a time, not four rows together, which changes no bits).
TEXT ·dotQ4_0x1N2AVX512(SB), NOSPLIT, $8-112
	MOVQ out+0(FP), DI
	MOVQ outB+8(FP), AX
	MOVQ AX, 0(SP)
	MOVQ wd+16(FP), R12
	MOVQ wq+32(FP), R11
	MOVQ rows+104(FP), BX
	Q4CONSTS
	Q4MASKS(nb+96(FP))

row2:
	MOVQ   R12, R8
	MOVQ   R11, SI
	MOVQ   xd+48(FP), R9
	MOVQ   xdB+56(FP), R14
	MOVQ   xb+64(FP), DX
	MOVQ   xbB+72(FP), R15
	MOVQ   c+80(FP), R10
	MOVQ   cB+88(FP), AX
	MOVQ   nb+96(FP), CX
	MOVQ   CX, R13
	SHRQ   $3, R13
	ANDQ   $7, CX
	VPXORD Z0, Z0, Z0
	VPXORD Z8, Z8, Z8
	TESTQ  R13, R13
	JZ     rest2

group2:
	Q4PREFETCH
	VCVTPH2PS  (R8), Y10
	VMULPS     (R9), Y10, Y9
	VMULPS     (R14), Y10, Y12
	Q4STEP2(0, 0, 64, 128, 192, 0, Z16)
	Q4STEP2(64, 256, 320, 384, 448, 64, Z17)
	ADDQ       $128, SI
	ADDQ       $512, DX
	ADDQ       $512, R15
	ADDQ       $128, R10
	ADDQ       $128, AX
	ADDQ       $16, R8
	ADDQ       $32, R9
	ADDQ       $32, R14
	DECQ       R13
	JNZ        group2

rest2:
	CMPQ       CX, $4
	JLT        short2
	VCVTPH2PS  (R8), X10
	VMULPS     (R9), X10, X9
	VMULPS     (R14), X10, X12
	Q4STEP2(0, 0, 64, 128, 192, 0, Z16)
	ADDQ       $64, SI
	ADDQ       $256, DX
	ADDQ       $256, R15
	ADDQ       $64, R10
	ADDQ       $64, AX
	ADDQ       $8, R8
	ADDQ       $16, R9
	ADDQ       $16, R14
	SUBQ       $4, CX

short2:
	TESTQ       CX, CX
	JZ          store2
	MOVQ        CX, R13
	SHLQ        $4, R13
	VCVTPH2PS.Z (R8), K3, X10
	VMULPS.Z    (R9), X10, K3, X9
	VMULPS.Z    (R14), X10, K3, X12
	Q4UNPACKSHORT
	Q4SUMSSHORT(DX, R10, Z9, Z0, R13, CX)
	Q4SUMSSHORT(R15, AX, Z12, Z8, R13, CX)

store2:
	VEXTRACTF64X4 $1, Z0, Y2
	VADDPS     Y2, Y0, Y0
	HSUMPS(Y0, X0, X1)
	VMOVSS     X0, (DI)
	VEXTRACTF64X4 $1, Z8, Y2
	VADDPS     Y2, Y8, Y8
	HSUMPS(Y8, X8, X1)
	MOVQ       0(SP), AX
	VMOVSS     X8, (AX)
	ADDQ       $4, AX
	MOVQ       AX, 0(SP)
	ADDQ       $4, DI
	ADDQ       sd+24(FP), R12
	ADDQ       sq+40(FP), R11
	DECQ       BX
	JNZ        row2
	VZEROUPPER
	RET
