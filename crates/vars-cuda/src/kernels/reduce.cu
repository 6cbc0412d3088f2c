#line 2 "reduce.cu"
