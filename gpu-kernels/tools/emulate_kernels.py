#!/usr/bin/env python3
"""Line-for-line Python emulation of the indexing in gpu-kernels/kernels/*.cu, checked against
numpy and hashlib: the leaf message layout and padding, the SHA-256 rounds (with the K table
read from leaf_sha256.cu), both leaf kernels (one thread per tile, and one warp per tile with
its lanes, shuffles and division-free tile positions) against hashlib, the Freivalds 128-bit
reduction and signed trick, the tensor-core GEMM (packing, cp.async chunks, padded shared
rows, m16n8k32 fragments, guarded stores) and the dp4a GEMM (shared staging with 9-word rows,
4x4 per thread, guarded stores).
Run by hand (needs numpy): python3 gpu-kernels/tools/emulate_kernels.py. Not a GPU test."""

import hashlib, os, random, re
random.seed(21)  # the same cases every run
HERE = os.path.dirname(os.path.abspath(__file__))
src=open(os.path.join(HERE, '..', 'kernels', 'leaf_sha256.cu')).read()
K=[int(x,16) for x in re.findall(r'0x([0-9a-f]{8})u', src[src.index('K256'):src.index('};')])]
assert len(K)==64
M=0xffffffff
def rotr(x,r): return ((x>>r)|(x<<(32-r)))&M
def sha(msg):
    h=[0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19]
    L=len(msg); padded=((L+8)//64+1)*64
    pm=msg+b"\x80"+b"\0"*(padded-L-9)+(L*8).to_bytes(8,'big')
    assert len(pm)==padded
    for blk in range(0,padded,64):
        w=[int.from_bytes(pm[blk+4*i:blk+4*i+4],'big') for i in range(16)]
        a,b,cc,d,e,f,g,hh=h
        for i in range(64):
            if i<16: wi=w[i]
            else:
                w15=w[(i-15)&15]; w2=w[(i-2)&15]
                s0=rotr(w15,7)^rotr(w15,18)^(w15>>3); s1=rotr(w2,17)^rotr(w2,19)^(w2>>10)
                wi=(w[i&15]+s0+w[(i-7)&15]+s1)&M; w[i&15]=wi
            S1=rotr(e,6)^rotr(e,11)^rotr(e,25); ch=(e&f)^(~e&M&g)
            t1=(hh+S1+ch+K[i]+wi)&M; S0=rotr(a,2)^rotr(a,13)^rotr(a,22); maj=(a&b)^(a&cc)^(b&cc)
            hh=g; g=f; f=e; e=(d+t1)&M; d=cc; cc=b; b=a; a=(t1+S0+maj)&M
        h=[(x+y)&M for x,y in zip(h,[a,b,cc,d,e,f,g,hh])]
    return b"".join(x.to_bytes(4,'big') for x in h)
for L in list(range(0,200))+[1000,4126]:
    msg=bytes(random.getrandbits(8) for _ in range(L))
    assert sha(msg)==hashlib.sha256(msg).digest(),L
print("sha ok")

import struct
def leaf_ref(c, m, n, tm, tn, I, J):
    tile = []
    for r in range(tm):
        for cc in range(tn):
            row, col = I*tm+r, J*tn+cc
            tile.append(c[row*n+col] if row<m and col<n else 0)
    leaf = b"matproof/v1/c"+struct.pack("<QQ",I,J)+b"".join(struct.pack("<i",v) for v in tile)
    return hashlib.sha256(b"\x00"+leaf).digest()
def prefix_byte(p):
    lo=0x666f6f727074616d; hi=0x00000000632f31762f
    return ((lo if p<8 else hi) >> (8*(p&7))) & 0xff
def leaf_emu(c,m,n,tm,tn,I,J):
    L=30+4*tm*tn; padded=((L+8)//64+1)*64
    def mb(p):
        if p>=L:
            if p==L: return 0x80
            if p+8>=padded:
                bits=L*8; b=p-(padded-8); return (bits>>(56-8*b))&0xff
            return 0
        if p==0: return 0
        if p<14: return prefix_byte(p-1)
        if p<22: return (I>>(8*(p-14)))&0xff
        if p<30: return (J>>(8*(p-22)))&0xff
        q=p-30; e=q>>2; row=I*tm+e//tn; col=J*tn+e%tn
        v=(c[row*n+col] if row<m and col<n else 0)&0xffffffff
        return (v>>(8*(q&3)))&0xff
    msg=bytes(mb(p) for p in range(padded))
    # verify padding equals what sha256 would produce
    return msg, L
for trial in range(200):
    m,n=random.randint(1,20),random.randint(1,20); tm,tn=random.randint(1,9),random.randint(1,9)
    c=[random.randint(-2**31,2**31-1) for _ in range(m*n)]
    I=random.randrange((m+tm-1)//tm); J=random.randrange((n+tn-1)//tn)
    msg,L=leaf_emu(c,m,n,tm,tn,I,J)
    leaf=b"matproof/v1/c"+struct.pack("<QQ",I,J)
    tile=[]
    for r in range(tm):
        for cc in range(tn):
            row,col=I*tm+r,J*tn+cc
            tile.append(c[row*n+col] if row<m and col<n else 0)
    full=b"\x00"+leaf+b"".join(struct.pack("<i",v) for v in tile)
    assert msg[:L]==full, trial
    # standard padding
    pad=full+b"\x80"+b"\x00"*((55-len(full))%64)+struct.pack(">Q",len(full)*8)
    assert msg==pad,(trial,len(msg),len(pad))
print("leaf message ok")

# ---- leaf_sha256.cu: the word-level kernels (c_leaf_hashes, c_leaf_hashes_warp) ----------
def compress(h, w):
    w = list(w)
    a,b,cc,d,e,f,g,hh=h
    for i in range(64):
        if i<16: wi=w[i]
        else:
            w15=w[(i-15)&15]; w2=w[(i-2)&15]
            s0=rotr(w15,7)^rotr(w15,18)^(w15>>3); s1=rotr(w2,17)^rotr(w2,19)^(w2>>10)
            wi=(w[i&15]+s0+w[(i-7)&15]+s1)&M; w[i&15]=wi
        S1=rotr(e,6)^rotr(e,11)^rotr(e,25); ch=(e&f)^(~e&M&g)
        t1=(hh+S1+ch+K[i]+wi)&M; S0=rotr(a,2)^rotr(a,13)^rotr(a,22); maj=(a&b)^(a&cc)^(b&cc)
        hh=g; g=f; f=e; e=(d+t1)&M; d=cc; cc=b; b=a; a=(t1+S0+maj)&M
    return [(x+y)&M for x,y in zip(h,[a,b,cc,d,e,f,g,hh])]
H0=[0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19]
def header_byte(p,I,J):
    if p==0: return 0
    if p<14: return prefix_byte(p-1)
    if p<22: return (I>>(8*(p-14)))&0xff
    return (J>>(8*(p-22)))&0xff
def header_word(w,I,J):
    p=4*w
    return (header_byte(p,I,J)<<24)|(header_byte(p+1,I,J)<<16)|(header_byte(p+2,I,J)<<8)|header_byte(p+3,I,J)
def byte_perm(x,y,s):  # CUDA __byte_perm: bytes of y:x, selector nibbles pick result bytes
    src=[(x>>(8*i))&0xff for i in range(4)]+[(y>>(8*i))&0xff for i in range(4)]
    return sum(src[(s>>(4*i))&7]<<(8*i) for i in range(4))
def straddle_word(upper,lower): return byte_perm(upper,lower,0x2345)
class Tile:
    def __init__(t,c,m,n,tm,tn,col_blocks,index):
        t.c,t.m,t.n,t.tm,t.tn=c,m,n,tm,tn
        t.I=index//col_blocks; t.J=index-t.I*col_blocks
        t.row0=t.I*tm; t.col0=t.J*tn; t.elements=tm*tn
        ln=30+4*t.elements; t.words=((ln+8)//64+1)*16; t.bits=ln*8
def value_at(t,e,r,col):
    assert e==r*t.tn+col and 0<=col<t.tn
    if e<t.elements:
        row,cc=t.row0+r,t.col0+col
        return (t.c[row*t.n+cc]&M) if (row<t.m and cc<t.n) else 0
    return 0x80 if e==t.elements else 0
def with_length(t,w,word):
    if w+2==t.words: return (t.bits>>32)&M
    if w+1==t.words: return t.bits&M
    return word
def leaf_thread(c,m,n,tm,tn,col_blocks,index):
    t=Tile(c,m,n,tm,tn,col_blocks,index); h=list(H0)
    upper=(t.J>>32)&M; e=r=col=0
    for w0 in range(0,t.words,16):
        w=[]
        for i in range(16):
            wi=w0+i
            if wi<7: word=header_word(wi,t.I,t.J)
            else:
                lower=value_at(t,e,r,col); word=straddle_word(upper,lower); upper=lower; e+=1; col+=1
                if col==t.tn: col=0; r+=1
            w.append(with_length(t,wi,word))
        h=compress(h,w)
    return b"".join(x.to_bytes(4,'big') for x in h)
def leaf_warp(c,m,n,tm,tn,col_blocks,index):
    t=Tile(c,m,n,tm,tn,col_blocks,index)
    lanes=[]
    for lane in range(32):
        e=lane-8; col=e; r=0
        while col>=tn: col-=tn; r+=1
        lanes.append([e,col,r])
    hs=[list(H0) for _ in range(32)]
    blocks=t.words//16
    for block in range(0,blocks,2):
        words=[]
        for lane in range(32):
            e,col,r=lanes[lane]; wl=block*16+lane; word=0
            if wl<7: word=header_word(wl,t.I,t.J)
            elif wl<t.words:
                upper=(t.J>>32)&M if e<0 else value_at(t,e,r,col)
                wraps=col+1>=tn
                lower=value_at(t,e+1,r+1 if wraps else r,0 if wraps else col+1)
                word=with_length(t,wl,straddle_word(upper,lower))
            words.append(word)
        for lane in range(32):  # every lane compresses the shuffled words
            hs[lane]=compress(hs[lane],[words[i] for i in range(16)])
            if block+1<blocks: hs[lane]=compress(hs[lane],[words[16+i] for i in range(16)])
        for st in lanes:
            st[0]+=32; st[1]+=32
            while st[1]>=tn: st[1]-=tn; st[2]+=1
    assert all(h==hs[0] for h in hs)
    return b"".join(x.to_bytes(4,'big') for x in hs[0])
cases=[(1,1,1,1),(3,5,2,2),(20,20,9,9),(17,33,4,4),(5,7,16,1),(7,5,1,16),(40,70,32,64),(64,64,64,64),(300,170,8,8)]
for _ in range(25):
    cases.append((random.randint(1,40),random.randint(1,40),random.randint(1,20),random.randint(1,20)))
checked=0
for (m,n,tm,tn) in cases:
    c=[random.choice([-2**31,2**31-1,-1,0,random.randint(-2**31,2**31-1)]) for _ in range(m*n)]
    cb=(n+tn-1)//tn; count=((m+tm-1)//tm)*cb
    for index in sorted(set([0,count-1]+[random.randrange(count) for _ in range(3)])):
        I,J=index//cb,index%cb
        ref=leaf_ref(c,m,n,tm,tn,I,J)
        assert leaf_thread(c,m,n,tm,tn,cb,index)==ref,("thread",m,n,tm,tn,index)
        assert leaf_warp(c,m,n,tm,tn,cb,index)==ref,("warp",m,n,tm,tn,index)
        checked+=1
# A large tile index: u64le(I), u64le(J) with their upper bytes set (J >> 32 feeds word 7).
big_I,big_J=(1<<40)+3,(1<<36)+0x1234567
cb=big_J+1
c=[random.randint(-2**31,2**31-1) for _ in range(4)]
ref=hashlib.sha256(b"\x00matproof/v1/c"+struct.pack("<QQ",big_I,big_J)+b"\0"*16).digest()
assert leaf_thread(c,2,2,2,2,cb,big_I*cb+big_J)==ref and leaf_warp(c,2,2,2,2,cb,big_I*cb+big_J)==ref
print("leaf kernels ok (thread and warp per tile):",checked,"tiles against hashlib")

Q=(1<<61)-1; M64=(1<<64)-1
def reduce128(lo,hi):
    s=(lo&Q)+((lo>>61)|((hi<<3)&Q))+(hi>>58)
    s=(s&Q)+(s>>61)
    return s-Q if s>=Q else s
for _ in range(20000):
    x=random.getrandbits(random.choice([64,100,110,127,128]))
    lo,hi=x&M64,x>>64
    assert reduce128(lo,hi)==x%Q,(x)
def proj(row, r):
    acc=[0]*32
    for j,v in enumerate(row):
        lane=j%32
        rr=Q-r[j] if v<0 else r[j]
        acc[lane]=(acc[lane]+abs(v)*rr)
    s=0
    for a in acc:
        assert a<2**128
        s=(s+reduce128(a&M64,a>>64))%Q
    return s
for _ in range(200):
    n=random.randint(1,300)
    row=[random.choice([-2**31,2**31-1,-1,0,random.randint(-2**31,2**31-1)]) for _ in range(n)]
    r=[random.choice([0,Q-1,random.randrange(Q)]) for _ in range(n)]
    assert proj(row,r)==sum(v*x for v,x in zip(row,r))%Q
print("ok")

import numpy as np
np.random.seed(21)
BM=BN=128; BK=64; SROW=80
def rup(x,b): return (x+b-1)//b*b
def u32(buf, off):  # little-endian word from int8 byte buffer
    return buf[off:off+4].view(np.int8).copy()
def mma(acc, a_regs, b_regs):
    # a_regs[lane][4] each 4 int8; b_regs[lane][2]; acc[lane][4]
    A=np.zeros((16,32),np.int64); B=np.zeros((32,8),np.int64)
    for lane in range(32):
        g,t=lane>>2,lane&3
        a=a_regs[lane]
        A[g, t*4:t*4+4]=a[0]; A[g+8,t*4:t*4+4]=a[1]; A[g,16+t*4:16+t*4+4]=a[2]; A[g+8,16+t*4:16+t*4+4]=a[3]
        b=b_regs[lane]
        B[t*4:t*4+4,g]=b[0]; B[16+t*4:16+t*4+4,g]=b[1]
    D=A@B
    for lane in range(32):
        g,t=lane>>2,lane&3
        acc[lane][0]+=D[g,2*t]; acc[lane][1]+=D[g,2*t+1]; acc[lane][2]+=D[g+8,2*t]; acc[lane][3]+=D[g+8,2*t+1]
def run(A,B):
    m,k=A.shape; n=B.shape[1]
    mp,np_,kp=rup(m,BM),rup(n,BN),rup(k,BK)
    ap=np.zeros((mp,kp),np.int8); ap[:m,:k]=A
    btp=np.zeros((np_,kp),np.int8); btp[:n,:k]=B.T
    ap=ap.reshape(-1); btp=btp.reshape(-1)
    C=np.zeros((m,n),np.int64)
    for by in range(mp//BM):
        for bx in range(np_//BN):
            row0,col0=by*BM,bx*BN
            acc={(w,mi,ni):[[0]*4 for _ in range(32)] for w in range(8) for mi in range(4) for ni in range(4)}
            for kt in range(kp//BK):
                As=np.zeros(BM*SROW,np.int8); Bs=np.zeros(BM*SROW,np.int8)
                for tid in range(256):
                    for q in range(2):
                        chunk=tid+q*256; r=chunk>>2; c16=(chunk&3)*16
                        ga=(row0+r)*kp+kt*BK+c16; gb=(col0+r)*kp+kt*BK+c16
                        As[r*SROW+c16:r*SROW+c16+16]=ap[ga:ga+16]; Bs[r*SROW+c16:r*SROW+c16+16]=btp[gb:gb+16]
                for kk in (0,32):
                    for w in range(8):
                        wm,wn=w>>2,w&3
                        for mi in range(4):
                            for ni in range(4):
                                ar=[];br=[]
                                for lane in range(32):
                                    g,t=lane>>2,lane&3
                                    pb=(wn*32+ni*8+g)*SROW+kk+t*4
                                    br.append((Bs[pb:pb+4],Bs[pb+16:pb+20]))
                                    pa=(wm*64+mi*16+g)*SROW+kk+t*4
                                    ar.append((As[pa:pa+4],As[pa+8*SROW:pa+8*SROW+4],As[pa+16:pa+20],As[pa+8*SROW+16:pa+8*SROW+20]))
                                mma(acc[(w,mi,ni)],ar,br)
            for w in range(8):
                wm,wn=w>>2,w&3
                for mi in range(4):
                    for ni in range(4):
                        for lane in range(32):
                            g,t=lane>>2,lane&3
                            r=row0+wm*64+mi*16+g; col=col0+wn*32+ni*8+t*2
                            for h in range(2):
                                rr=r+h*8
                                if rr<m:
                                    if col<n: C[rr,col]=acc[(w,mi,ni)][lane][2*h]
                                    if col+1<n: C[rr,col+1]=acc[(w,mi,ni)][lane][2*h+1]
    return C
for (m,k,n) in [(1,1,1),(17,33,65),(130,70,90)]:
    A=np.random.randint(-128,128,(m,k)).astype(np.int8); B=np.random.randint(-128,128,(k,n)).astype(np.int8)
    assert (run(A,B)==A.astype(np.int64)@B.astype(np.int64)).all(),(m,k,n)
    print("ok",m,k,n)

# ---- gemm_dp4a.cu: 64x64 block tile, 256 threads with 4x4 each, K slices of 32 bytes -------
def dp4a(a,b,acc):
    av=[((a>>(8*i))&0xff)-256*(((a>>(8*i))&0xff)>>7) for i in range(4)]
    bv=[((b>>(8*i))&0xff)-256*(((b>>(8*i))&0xff)>>7) for i in range(4)]
    return acc+sum(x*y for x,y in zip(av,bv))
def run_dp4a(A,B):
    m,k=A.shape; n=B.shape[1]
    TILE,KB,KW,SW=64,32,8,9
    mp,np_,kp=rup(m,64),rup(n,64),rup(k,32)
    ap=np.zeros((mp,kp),np.int8); ap[:m,:k]=A
    btp=np.zeros((np_,kp),np.int8); btp[:n,:k]=B.T
    a32=ap.reshape(-1).view('<u4').astype(np.int64); b32=btp.reshape(-1).view('<u4').astype(np.int64)
    kpw=kp//4
    C=np.zeros((m,n),np.int64)
    for by in range(mp//TILE):
        for bx in range(np_//TILE):
            row0,col0=by*TILE,bx*TILE
            acc=np.zeros((256,4,4),np.int64)
            for k0 in range(0,kp,KB):
                w0=k0//4; As=np.zeros(TILE*SW,np.int64); Bs=np.zeros(TILE*SW,np.int64)
                for tid in range(256):
                    for q in range(2):
                        e=tid+q*256; r=e>>3; w=e&7
                        As[r*SW+w]=a32[(row0+r)*kpw+w0+w]; Bs[r*SW+w]=b32[(col0+r)*kpw+w0+w]
                for tid in range(256):
                    tx,ty=tid&15,tid>>4
                    for w in range(KW):
                        av=[int(As[(ty+16*i)*SW+w]) for i in range(4)]
                        bv=[int(Bs[(tx+16*j)*SW+w]) for j in range(4)]
                        for i in range(4):
                            for j in range(4): acc[tid,i,j]=dp4a(av[i],bv[j],acc[tid,i,j])
            for tid in range(256):
                tx,ty=tid&15,tid>>4
                for i in range(4):
                    r=row0+ty+16*i
                    if r>=m: continue
                    for j in range(4):
                        col=col0+tx+16*j
                        if col<n: C[r,col]=acc[tid,i,j]
    return C
for (m,k,n) in [(1,1,1),(17,33,65),(70,40,90)]:
    A=np.random.randint(-128,128,(m,k)).astype(np.int8); B=np.random.randint(-128,128,(k,n)).astype(np.int8)
    A[0,:]=-128; B[:,0]=-128
    assert (run_dp4a(A,B)==A.astype(np.int64)@B.astype(np.int64)).all(),(m,k,n)
    print("dp4a ok",m,k,n)

# cuBLASLt comparison (gpu-kernels/src/timing.rs + cublaslt.rs): cuBLASLt is column-major. It
# is given the packed Bᵀ (np×kp, row stride kp) as the k×n matrix "A" with ld = kp, op T; the
# packed A (mp×kp) as the k×m matrix "B" with ld = kp, op N; and D as n×m with ld = np. Check
# that this computes row-major C = A·B in D's first n columns of each np-wide row.
def colmajor_view(buf, rows, cols, ld):
    return np.array([[buf[r + c*ld] for c in range(cols)] for r in range(rows)], dtype=np.int64)
for (m,k,n) in [(1,1,1),(17,33,65),(130,70,90)]:
    A=np.random.randint(-128,128,(m,k)).astype(np.int64); B=np.random.randint(-128,128,(k,n)).astype(np.int64)
    mp,np_,kp=-(-m//128)*128,-(-n//128)*128,-(-k//64)*64
    ap=np.zeros(mp*kp,dtype=np.int64); btp=np.zeros(np_*kp,dtype=np.int64)
    for i in range(m): ap[i*kp:i*kp+k]=A[i]
    for j in range(n): btp[j*kp:j*kp+k]=B[:,j]
    X=colmajor_view(btp,k,n,kp); Y=colmajor_view(ap,k,m,kp)
    Dt=X.T@Y                      # op(X) = Xᵀ (n×k), op(Y) = Y (k×m): n×m
    d=np.zeros(m*np_,dtype=np.int64)
    for j in range(n):
        for i in range(m): d[j+i*np_]=Dt[j,i]   # column-major store with ld = np
    assert (d.reshape(m,np_)[:,:n]==A@B).all(),(m,k,n)
    print("cublaslt layout ok",m,k,n)
