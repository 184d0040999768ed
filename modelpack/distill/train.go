package distill

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// TrainOptions configures the optional fine-tuning after initialisation.
type TrainOptions struct {
	Steps    int     // optimiser steps; 0 skips training
	LR       float64 // Adam learning rate
	KLWeight float64 // λ of KL(p_teacher‖p_student)
	LBWeight float64 // weight of the load-balancing loss E·Σ f_i·P_i
	ZWeight  float64 // weight of the router z-loss mean(logsumexp(logits)²)
	Experts  bool    // also train the experts, not only the routers
	Batch    int     // sequences per step; 0 means 8
}

// TrainReport summarises a training run.
type TrainReport struct {
	Steps     int     `json:"steps"`
	LR        float64 `json:"lr"`
	KLWeight  float64 `json:"kl_weight"`
	LBWeight  float64 `json:"lb_weight"`
	ZWeight   float64 `json:"z_weight"`
	Experts   bool    `json:"train_experts"`
	FirstLoss float64 `json:"first_loss"`
	LastLoss  float64 `json:"last_loss"`
	Seconds   float64 `json:"seconds"`
}

// maxTeacherCache bounds the bytes of teacher logits kept between steps;
// beyond it the teacher is rerun for every batch.
const maxTeacherCache = 512 << 20

// trainNet fine-tunes sn's routers (and experts) with Adam on the loss
// L_LM + λ·KL + w_lb·lb + w_z·z, the teacher tn frozen.
func trainNet(sn, tn *net, seqs [][]int, o TrainOptions, threads int, logf func(string, ...any)) (*TrainReport, error) {
	start := time.Now()
	B := o.Batch
	if B <= 0 {
		B = 8
	}
	B = min(B, len(seqs))
	lw := lossWeights{kl: float32(o.KLWeight), lb: float32(o.LBWeight), z: float32(o.ZWeight)}
	nw := workers(B, threads)
	gw := make([]*grads, nw)
	for w := range gw {
		gw[w] = newGrads(sn, o.Experts)
	}
	params := sn.params(o.Experts)
	opt := newAdam(params, o.LR)
	V := sn.cfg.Vocab
	cacheTeacher := int64(tokens(seqs))*int64(V)*4 <= maxTeacherCache
	var mu sync.Mutex
	teacherCache := make([][]float32, len(seqs))
	teacher := func(i int) []float32 {
		if lw.kl == 0 {
			return nil
		}
		mu.Lock()
		c := teacherCache[i]
		mu.Unlock()
		if c != nil {
			return c
		}
		c = tn.forward(seqs[i]).logits
		if cacheTeacher {
			mu.Lock()
			teacherCache[i] = c
			mu.Unlock()
		}
		return c
	}
	rep := &TrainReport{Steps: o.Steps, LR: o.LR, KLWeight: o.KLWeight, LBWeight: o.LBWeight, ZWeight: o.ZWeight, Experts: o.Experts}
	L := len(sn.layers)
	for step := 0; step < o.Steps; step++ {
		batch := make([]int, B)
		positions := 0
		for j := range batch {
			batch[j] = (step*B + j) % len(seqs)
			positions += len(seqs[batch[j]]) - 1
		}
		if positions <= 0 {
			return nil, fmt.Errorf("training: batch of %d sequences has no next-token positions", B)
		}
		scale := 1 / float32(positions)
		auxScale := 1 / float32(B*L)
		parts := make([]lossParts, B)
		// Worker w takes batch entries w, w+nw, ... so that the gradient sums
		// run in the same order every time.
		var wg sync.WaitGroup
		for w := 0; w < nw; w++ {
			gw[w].zero()
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for j := w; j < B; j += nw {
					ids := seqs[batch[j]]
					st := sn.forward(ids)
					d, lp := outputLoss(st.logits, teacher(batch[j]), ids, V, lw, scale)
					aux := sn.backward(st, d, gw[w], lw, auxScale)
					lp.lb, lp.z = aux.lb, aux.z
					parts[j] = lp
				}
			}(w)
		}
		wg.Wait()
		var sum lossParts
		for _, p := range parts {
			sum.lm += p.lm
			sum.kl += p.kl
			sum.lb += p.lb
			sum.z += p.z
		}
		loss := (sum.lm+o.KLWeight*sum.kl)/float64(positions) + (o.LBWeight*sum.lb+o.ZWeight*sum.z)/float64(B*L)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, fmt.Errorf("training diverged at step %d (loss %v); lower --lr", step, loss)
		}
		if step == 0 {
			rep.FirstLoss = loss
		}
		rep.LastLoss = loss
		g := gw[0].flat()
		for w := 1; w < nw; w++ {
			for i, s := range gw[w].flat() {
				for j, v := range s {
					g[i][j] += v
				}
			}
		}
		opt.step(params, g)
		if step%10 == 0 || step == o.Steps-1 {
			logf("step %d/%d: loss %.4f (lm %.4f, kl %.4f, lb %.3f, z %.3f)", step+1, o.Steps, loss,
				sum.lm/float64(positions), sum.kl/float64(positions), sum.lb/float64(B*L), sum.z/float64(B*L))
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// adam is the Adam optimiser over a list of parameter slices.
type adam struct {
	lr, b1, b2, eps float64
	t               int
	m, v            [][]float32
}

func newAdam(params [][]float32, lr float64) *adam {
	a := &adam{lr: lr, b1: 0.9, b2: 0.999, eps: 1e-8}
	for _, p := range params {
		a.m = append(a.m, make([]float32, len(p)))
		a.v = append(a.v, make([]float32, len(p)))
	}
	return a
}

func (a *adam) step(params, g [][]float32) {
	a.t++
	c1 := 1 - math.Pow(a.b1, float64(a.t))
	c2 := 1 - math.Pow(a.b2, float64(a.t))
	lr := float32(a.lr * math.Sqrt(c2) / c1)
	b1, b2, eps := float32(a.b1), float32(a.b2), float32(a.eps)
	for i, p := range params {
		m, v, gi := a.m[i], a.v[i], g[i]
		for j := range p {
			m[j] = b1*m[j] + (1-b1)*gi[j]
			v[j] = b2*v[j] + (1-b2)*gi[j]*gi[j]
			p[j] -= lr * m[j] / (float32(math.Sqrt(float64(v[j]))) + eps)
		}
	}
}
